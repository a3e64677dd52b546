#!/usr/bin/env node
// A committed launcher, so `npm ci` can link the `nucleus` command before the build has run.
import '../dist/cli/main.js';
