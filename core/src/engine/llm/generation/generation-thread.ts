// The body of a generation worker, run as a thread or as a child process (see workers/worker-port.ts). It owns the
// ORT sessions, so `session.run` blocks this worker and never the server's event loop, and it runs the whole engine
// loop here: admit, schedule, step, sample, stop checks, emit. The main thread only submits requests and relays the
// token groups this worker posts. Each model it serves is a GenerationThreadModel; this file is the thread around
// them: messages in, each model's turn in order, and sleep when none has anything to do.
//
// A worker of one model's own serves that model from its spec. A thread several small models share (see
// SharedSessionThread) starts with none: it opens one per `open` and releases one per `close`, and every message
// names its model in `session`. Their loops interleave: one iteration of each model per round.
import * as ort from 'onnxruntime-node';
import { NucleusError } from '@nucleus/sdk';
import type { SharedSessionThreadSpec } from '../../workers/worker-messages.js';
import { releaseAllocationFailureSession } from './fault-injecting-runner.js';
import type { FromGenerationThread, GenerationThreadSpec, ToGenerationThread } from './generation-messages.js';
import { GenerationThreadModel, type ModelMessage } from './generation-thread-model.js';
import { workerPort } from '../../workers/worker-port.js';

ort.env.logLevel = 'fatal';

const port = workerPort();
const boot = port.data as GenerationThreadSpec | SharedSessionThreadSpec;
const shared = 'shared' in boot;

function post(message: FromGenerationThread, transfer: ArrayBuffer[] = []): void {
  port.post(message, transfer);
}

/** The models served, by the id the main thread gave them (0 in a worker of one model's own). */
const models = new Map<number, GenerationThreadModel>();
/** Models being opened: the thread does not end before they are, so their sessions can be released. */
const opening = new Set<Promise<boolean>>();
/** Models to release before the next round (between turns, never inside one). */
const closing: number[] = [];
let exitCode: number | undefined;

function open(spec: GenerationThreadSpec, id: number): Promise<boolean> {
  const model = new GenerationThreadModel(spec, (message, transfer) =>
    post(shared ? { ...message, session: id } : message, transfer),
  );
  const opened = model.open().then((ok) => {
    opening.delete(opened);
    if (ok) models.set(id, model);
    return ok;
  });
  opening.add(opened);
  return opened;
}

// A message for a model the thread does not serve (it was closed, or never opened): answered as unavailable.
function unserved(message: ModelMessage, id: number): void {
  const e = new NucleusError(503, 'worker_unavailable', 'its model is not open in this worker');
  const answer = { status: e.status, code: e.code, message: e.message, session: id };
  if (message.type === 'submit') post({ type: 'rejected', id: message.id, ...answer });
  else if (message.type === 'embed') post({ type: 'embed-error', id: message.id, ...answer });
  else if (message.type === 'persist')
    post({ type: 'persisted', id: message.id, blocks: 0, bytes: 0, error: e.message, session: id });
  else if (message.type === 'release') post({ type: 'released', id: message.id, bytes: 0, found: false, session: id });
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

function receive(message: ToGenerationThread): void {
  const id = message.session ?? 0;
  switch (message.type) {
    case 'exit':
      exitCode = message.code;
      break;
    case 'open':
      void open(message.spec, id);
      break;
    case 'close':
      closing.push(id);
      break;
    default: {
      const model = models.get(id);
      if (model) model.receive(message);
      else unserved(message, id);
    }
  }
  wakeUp();
}

async function main(): Promise<void> {
  if (!shared && !(await open(boot, 0))) return;
  port.on(receive);

  // The loop: each model's turn (embeddings, then one iteration of generation); sleep only when none has work.
  for (;;) {
    if (exitCode !== undefined) {
      // Ending a thread while ORT holds a session (let alone runs it) can abort the whole process: release first.
      await Promise.all(opening);
      for (const model of models.values()) await model.release();
      await releaseAllocationFailureSession();
      process.exit(exitCode);
    }
    for (let id = closing.shift(); id !== undefined; id = closing.shift()) {
      const model = models.get(id);
      models.delete(id);
      await model?.release();
      post({ type: 'closed', session: id });
    }
    let idle = true;
    let wakeInMs: number | undefined;
    for (const model of [...models.values()]) {
      const turn = await model.turn();
      if (!turn.idle) idle = false;
      else if (turn.wakeInMs !== undefined) wakeInMs = Math.min(wakeInMs ?? turn.wakeInMs, turn.wakeInMs);
    }
    if (idle) await sleep(wakeInMs);
    else await yieldToEvents();
  }
}

void main();
