// The body of a generation worker, run as a thread or as a child process (see workers/worker-port.ts). It owns the
// ORT session, so `session.run` blocks this worker and never the server's event loop, and it runs the whole engine
// loop here: admit, schedule, step, sample, stop checks, emit. The main thread only submits requests and relays the
// token groups this worker posts. The model it serves is a GenerationThreadModel; this file is the thread around it:
// its messages in, its turns, and sleep when it has nothing to do.
import * as ort from 'onnxruntime-node';
import { releaseAllocationFailureSession } from './fault-injecting-runner.js';
import type { FromGenerationThread, GenerationThreadSpec, ToGenerationThread } from './generation-messages.js';
import { GenerationThreadModel } from './generation-thread-model.js';
import { workerPort } from '../../workers/worker-port.js';

ort.env.logLevel = 'fatal';

const port = workerPort();
const spec = port.data as GenerationThreadSpec;

function post(message: FromGenerationThread, transfer: ArrayBuffer[] = []): void {
  port.post(message, transfer);
}

let wake: (() => void) | undefined;
// A message that came while the loop was busy must not be slept through.
let woken = false;
function wakeUp(): void {
  const w = wake;
  wake = undefined;
  if (w) w();
  else woken = true;
}

function sleep(ms: number | undefined): Promise<void> {
  if (woken) {
    woken = false;
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = ms === undefined ? undefined : setTimeout(() => wakeUp(), Math.max(0, ms));
    wake = () => {
      if (timer) clearTimeout(timer);
      woken = false;
      resolve();
    };
  });
}

const yieldToEvents = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function main(): Promise<void> {
  const model = new GenerationThreadModel(spec, post);
  if (!(await model.open())) return;

  let exitCode: number | undefined;
  port.on((message: ToGenerationThread) => {
    if (message.type === 'exit') exitCode = message.code;
    else model.receive(message);
    wakeUp();
  });

  // The loop: the model's turns (embeddings, then one iteration of generation); sleep only when there is nothing to do.
  for (;;) {
    if (exitCode !== undefined) {
      // Ending a thread while ORT holds a session (let alone runs it) can abort the whole process: release first.
      await model.release();
      await releaseAllocationFailureSession();
      process.exit(exitCode);
    }
    const turn = await model.turn();
    if (turn.idle) await sleep(turn.wakeInMs);
    else await yieldToEvents();
  }
}

void main();
