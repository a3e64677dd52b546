// Mocha's spec reporter, plus a last line CI can count: "tests: N passed, N failed, N skipped".
// With NUCLEUS_TEST_TIMING=1 it also lists each test file's wall time, slowest first, so the
// suite's cost can be found and kept under the 15-minute budget.
'use strict';
const path = require('node:path');
const Mocha = require('mocha');
const { EVENT_RUN_END, EVENT_SUITE_BEGIN, EVENT_SUITE_END } = Mocha.Runner.constants;

class CountingReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const timing = process.env.NUCLEUS_TEST_TIMING === '1';
    // A file's time is the sum of its top-level suites' (hooks included), keyed by file.
    const fileMs = new Map();
    const started = new Map();
    if (timing) {
      runner.on(EVENT_SUITE_BEGIN, (suite) => {
        if (suite.file && suite.parent?.root) started.set(suite, performance.now());
      });
      runner.on(EVENT_SUITE_END, (suite) => {
        const t0 = started.get(suite);
        if (t0 === undefined) return;
        started.delete(suite);
        const file = path.relative(process.cwd(), suite.file);
        fileMs.set(file, (fileMs.get(file) ?? 0) + (performance.now() - t0));
      });
    }
    runner.once(EVENT_RUN_END, () => {
      if (timing) {
        const rows = [...fileMs].sort((a, b) => b[1] - a[1]);
        const total = rows.reduce((sum, [, ms]) => sum + ms, 0);
        // In --parallel mode the events of a file arrive after it ran, without their parent suites: no wall times.
        if (rows.length === 0) process.stdout.write('\nfile wall times need a serial run (no --parallel)\n');
        else process.stdout.write(`\nfile wall times (${rows.length} files, ${(total / 1000).toFixed(1)} s):\n`);
        for (const [file, ms] of rows) process.stdout.write(`${(ms / 1000).toFixed(1).padStart(8)} s  ${file}\n`);
      }
      const s = runner.stats;
      // Spec registered its epilogue on the same event first, so this line comes after it.
      process.stdout.write(`tests: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
    });
  }
}
module.exports = CountingReporter;
