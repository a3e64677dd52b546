#!/usr/bin/env node
// npm run bench [-- suite…]: runs the benchmark suites and records their results under bench/results/.
import { suites } from './suites.js';

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(w in suites));
if (unknown.length) {
  process.stderr.write(`unknown suite(s) ${unknown.join(', ')}; available: ${Object.keys(suites).join(', ')}\n`);
  process.exit(2);
}
for (const name of wanted.length ? wanted : Object.keys(suites)) {
  process.stdout.write(`\n== ${name} ==\n`);
  process.stdout.write(`${await suites[name]!()}\n`);
}
