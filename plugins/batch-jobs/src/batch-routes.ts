import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { badRequest, tenancyOf, type InferenceService, type RouteContext, type RouteContribution } from '@nucleus/sdk';
import type { BatchCreate, BatchJobs } from './batch-jobs.js';
import { publicView, type StoredFile } from './batch-store.js';

const owner = (ctx: RouteContext): string => tenancyOf(ctx).tenant ?? '';

/** `/v1/files` and `/v1/batches` as the OpenAI Batch API has them: every file and job belongs to the key that made it. */
export function openAiBatchRoutes(jobs: BatchJobs, maxFileBytes: () => number): RouteContribution[] {
  return [
    {
      method: 'POST',
      path: '/v1/files',
      handler: async (ctx) => {
        ctx.body = publicView(await upload(ctx, jobs, maxFileBytes()));
      },
    },
    {
      method: 'GET',
      path: '/v1/files/:id',
      handler: async (ctx) => {
        ctx.body = publicView(await jobs.store.file(owner(ctx), ctx.params.id!));
      },
    },
    {
      method: 'GET',
      path: '/v1/files/:id/content',
      handler: async (ctx) => {
        const file = await jobs.store.file(owner(ctx), ctx.params.id!);
        ctx.type = 'application/jsonl';
        ctx.length = file.bytes;
        ctx.body = createReadStream(jobs.store.filePath(file.id));
      },
    },
    {
      method: 'POST',
      path: '/v1/batches',
      handler: async (ctx) => {
        ctx.body = publicView(await jobs.create(owner(ctx), bodyOf(ctx)));
      },
    },
    {
      method: 'GET',
      path: '/v1/batches',
      handler: async (ctx) => {
        const mine = (await jobs.store.batches()).filter((b) => b.owner === owner(ctx)).map(publicView);
        ctx.body = {
          object: 'list',
          data: mine,
          first_id: mine[0]?.id ?? null,
          last_id: mine.at(-1)?.id ?? null,
          has_more: false,
        };
      },
    },
    {
      method: 'GET',
      path: '/v1/batches/:id',
      handler: async (ctx) => {
        ctx.body = publicView(await jobs.store.batch(owner(ctx), ctx.params.id!));
      },
    },
    {
      method: 'POST',
      path: '/v1/batches/:id/cancel',
      handler: async (ctx) => {
        ctx.body = publicView(await jobs.cancel(owner(ctx), ctx.params.id!));
      },
    },
  ];
}

/**
 * The KServe-style variant for tensor models: a job over a file of rows (plain rows, or v2 inference requests, one per
 * line) for one model; its status and results come as for `/v1/batches`.
 */
export function kserveBatchRoutes(jobs: BatchJobs, inference: () => InferenceService): RouteContribution[] {
  return [
    {
      method: 'POST',
      path: '/v2/models/:model/batches',
      handler: async (ctx) => {
        const model = ctx.params.model!;
        inference().get(model);
        ctx.body = publicView(await jobs.create(owner(ctx), bodyOf(ctx), model));
      },
    },
    {
      method: 'GET',
      path: '/v2/models/:model/batches/:id',
      handler: async (ctx) => {
        const batch = await jobs.store.batch(owner(ctx), ctx.params.id!);
        if (batch.model !== ctx.params.model)
          throw badRequest('model_mismatch', `batch ${batch.id} runs on ${batch.model ?? 'LLMs'}`);
        ctx.body = publicView(batch);
      },
    },
  ];
}

function bodyOf(ctx: RouteContext): BatchCreate {
  const body = (ctx.request as { body?: unknown }).body;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw badRequest('invalid_request', 'the body is a JSON object');
  return body as BatchCreate;
}

// A multipart form with `purpose` and one `file`, streamed to disk; the file is kept once `purpose` says "batch".
function upload(ctx: RouteContext, jobs: BatchJobs, maxBytes: number): Promise<StoredFile> {
  if (!ctx.is('multipart/form-data'))
    throw badRequest('invalid_request', 'upload a file as multipart/form-data with fields purpose and file');
  return new Promise((resolve, reject) => {
    let purpose: string | undefined;
    let stored: Promise<StoredFile | undefined> | undefined;
    let closed!: () => void;
    const formEnded = new Promise<void>((r) => (closed = r));
    let form: busboy.Busboy;
    try {
      form = busboy({ headers: ctx.req.headers, limits: { files: 1, fields: 10 } });
    } catch (err) {
      return reject(badRequest('invalid_request', `not a multipart form: ${(err as Error).message}`));
    }
    form.on('field', (name, value) => {
      if (name === 'purpose') purpose = value;
    });
    form.on('file', (_name, stream: Readable, info) => {
      const purposeOnceKnown = async () => {
        await formEnded;
        return purpose === 'batch' ? purpose : undefined;
      };
      stored = jobs.store.addFile(owner(ctx), info.filename || 'upload.jsonl', purposeOnceKnown, stream, maxBytes);
      stored.catch(reject);
    });
    form.on('error', (err: Error) => reject(badRequest('invalid_request', `not a multipart form: ${err.message}`)));
    form.on('close', () => {
      closed();
      if (!stored) return reject(badRequest('invalid_request', 'the form has no file', 'file'));
      stored.then(
        (file) => (file ? resolve(file) : reject(badRequest('invalid_request', 'purpose is "batch"', 'purpose'))),
        reject,
      );
    });
    ctx.req.pipe(form);
  });
}
