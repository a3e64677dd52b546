import { strict as assert } from 'node:assert';
import { NucleusError } from '@nucleus/sdk';

/** Runs `run`, which must throw a 400 `NucleusError`; returns its code, message and the field it names. */
export function refusalOf(run: () => unknown): { code: string; message: string; param: string | undefined } {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof NucleusError, String(err));
    assert.equal(err.status, 400, String(err));
    return { code: err.code, message: err.message, param: err.param };
  }
  assert.fail('it was accepted');
}
