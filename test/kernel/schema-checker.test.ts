import { strict as assert } from 'node:assert';
import { Ajv } from 'ajv';
import { SchemaChecker } from '@nucleus/core/internal/kernel/schema-checker';

describe('SchemaChecker', () => {
  it('says why a schema does not compile, every time it is asked', () => {
    const checker = new SchemaChecker(() => new Ajv({ strict: false }));
    const broken = { type: 'object', properties: { n: { type: 'numbr' } } };
    const first = checker.errorOf(broken);
    assert.match(first ?? '', /type must be equal to one of the allowed values|numbr/);
    assert.equal(checker.errorOf(structuredClone(broken)), first);
    assert.equal(checker.errorOf({ type: 'object', properties: { n: { type: 'number' } } }), undefined);
  });

  it('checks each schema on its own: an $id or a definition one schema had does not carry over', () => {
    let made = 0;
    const checker = new SchemaChecker(() => {
      made++;
      return new Ajv({ strict: false });
    });
    const a = { $id: 'plugin-config', type: 'object', properties: { x: { type: 'string' } } };
    const b = { $id: 'plugin-config', type: 'object', properties: { y: { type: 'number' } } };
    assert.equal(checker.errorOf(a), undefined);
    // A second schema with the same $id compiles too (one Ajv keeping both would refuse it).
    assert.equal(checker.errorOf(b), undefined);
    // A $ref to a schema only an earlier check knew does not resolve.
    assert.match(checker.errorOf({ type: 'object', properties: { z: { $ref: 'plugin-config' } } }) ?? '', /resolve/);
    assert.equal(made, 1, 'one Ajv does every check');
  });
});
