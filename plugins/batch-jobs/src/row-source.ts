import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse';

/** One input row: its index among the data rows (from 0), and its value or why it could not be read. */
export type InputRow = { row: number; value: unknown } | { row: number; error: RowError };

/** Why one row failed; written into the output as `{"row": n, "error": {...}}`. */
export interface RowError {
  code: string;
  message: string;
  status?: number;
}

/** The format of an input file: `csv` when it says so or its name ends in `.csv`, JSONL otherwise. */
export function inputFormat(path: string, format?: 'jsonl' | 'csv'): 'jsonl' | 'csv' {
  return format ?? (path.toLowerCase().endsWith('.csv') ? 'csv' : 'jsonl');
}

/**
 * Streams the rows of a JSONL or CSV file, skipping the first `skip` data rows (done before a resume) without
 * parsing them. Blank lines are not rows. A CSV's first record is its header: each row becomes an object keyed by
 * it, numbers as numbers. A line that is not JSON, or a CSV record with a different number of cells, is an error row.
 */
export async function* readRows(path: string, format: 'jsonl' | 'csv', skip = 0): AsyncGenerator<InputRow> {
  if (format === 'csv') yield* csvRows(path, skip);
  else yield* jsonlRows(path, skip);
}

async function* jsonlRows(path: string, skip: number): AsyncGenerator<InputRow> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let row = 0;
  for await (const line of lines) {
    if (line.trim() === '') continue;
    const index = row++;
    if (index < skip) continue;
    try {
      yield { row: index, value: JSON.parse(line) };
    } catch (err) {
      yield {
        row: index,
        error: { code: 'invalid_json', status: 400, message: `not JSON: ${(err as Error).message}` },
      };
    }
  }
}

async function* csvRows(path: string, skip: number): AsyncGenerator<InputRow> {
  const records = createReadStream(path).pipe(
    parse({ skip_empty_lines: true, relax_column_count: true, trim: true, bom: true }),
  );
  let header: string[] | undefined;
  let row = 0;
  for await (const record of records as AsyncIterable<string[]>) {
    if (header === undefined) {
      header = record;
      continue;
    }
    const index = row++;
    if (index < skip) continue;
    if (record.length !== header.length) {
      yield {
        row: index,
        error: {
          code: 'invalid_row',
          status: 400,
          message: `the record has ${record.length} cells, the header ${header.length}`,
        },
      };
      continue;
    }
    const value: Record<string, unknown> = {};
    for (let i = 0; i < header.length; i++) {
      const cell = record[i]!;
      const n = cell === '' ? Number.NaN : Number(cell);
      value[header[i]!] = Number.isNaN(n) && cell !== 'NaN' ? cell : n;
    }
    yield { row: index, value };
  }
}

/** Data rows in a file, counted by lines (a CSV's header left out): the total a progress bar shows. */
export async function countRows(path: string, format: 'jsonl' | 'csv'): Promise<number> {
  let lines = 0;
  let blank = true;
  let last = 0x0a;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) lines++;
    last = chunk[chunk.length - 1]!;
    blank = false;
  }
  if (!blank && last !== 0x0a) lines++;
  return Math.max(0, format === 'csv' ? lines - 1 : lines);
}
