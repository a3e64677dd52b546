import { batchSuite } from './batch.js';
import { cacheSuite } from './cache.js';
import { coldstartSuite } from './coldstart.js';
import { dashboardSuite } from './dashboard.js';
import { fuzzSuite } from './fuzz.js';
import { ggufSuite } from './gguf-quants.js';
import { grpcSuite } from './grpc.js';
import { httpSuite } from './http.js';
import { httpProfileSuite } from './http-profile.js';
import { idleMemorySuite } from './idle-memory.js';
import { llmSuite } from './llm.js';
import { processesSuite } from './processes.js';
import { quantSuite } from './quant.js';
import { reloadSuite } from './reload.js';
import { soakSuite } from './soak.js';
import { specSuite } from './spec.js';
import { tensorSuite } from './tensor.js';
import { tensorBodiesSuite } from './tensor-bodies.js';
import { tokensSuite } from './tokens.js';
import { tokenizersSuite } from './tokenizers.js';
import { tunerSuite } from './tuner.js';

/** Every benchmark suite by name; each records its results and returns them as Markdown. */
export const suites: Record<string, () => Promise<string>> = {
  tensor: tensorSuite,
  'tensor-bodies': tensorBodiesSuite,
  batch: batchSuite,
  llm: llmSuite,
  soak: soakSuite,
  quant: quantSuite,
  spec: specSuite,
  tokenizers: tokenizersSuite,
  gguf: ggufSuite,
  cache: cacheSuite,
  http: httpSuite,
  'http-profile': httpProfileSuite,
  'idle-memory': idleMemorySuite,
  tokens: tokensSuite,
  fuzz: fuzzSuite,
  reload: reloadSuite,
  coldstart: coldstartSuite,
  grpc: grpcSuite,
  processes: processesSuite,
  tuner: tunerSuite,
  dashboard: dashboardSuite,
};
