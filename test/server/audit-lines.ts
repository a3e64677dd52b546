import { existsSync, readFileSync } from 'node:fs';

/** One line of the audit-log plugin's file. */
export interface AuditLine {
  time: string;
  requestId?: string;
  key?: string;
  actor?: string;
  address: string;
  action: string;
  target?: string;
  outcome: string;
  status: number;
  errorCode?: string;
  method?: string;
  route?: string;
}

/** The audit file's lines so far (none before it exists). */
export function auditLines(file: string): AuditLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditLine);
}
