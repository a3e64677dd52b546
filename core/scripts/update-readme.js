#!/usr/bin/env node
// Writes the config reference, generated from the core and plugin schemas, into README.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configReferenceBlock, README_MARKERS } from '../dist/cli/readme-reference.js';

const readme = fileURLToPath(new URL('../../README.md', import.meta.url));
const text = readFileSync(readme, 'utf8');
const [start, end] = README_MARKERS;
const from = text.indexOf(start);
const to = text.indexOf(end);
if (from < 0 || to < from) throw new Error(`README.md lacks the markers ${start} … ${end}`);
writeFileSync(readme, `${text.slice(0, from + start.length)}\n${configReferenceBlock()}\n${text.slice(to)}`);
console.log('README.md config reference updated');
