import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { Exposition } from '../observability/helpers.js';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';
import { followServer, stopServer } from '../helpers/server-child.js';

// Loose shapes: the test reads only the fields it checks.
interface Probe {
  httpGet: { path: string; port: string | number };
}
interface Container {
  name: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
}
type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below
  spec: any;
  data?: Record<string, string>;
};

const K8S = join(REPO_ROOT, 'deploy/k8s');
const kubectl = spawnSync('sh', ['-c', 'command -v kubectl']).stdout?.toString().trim() || null;

function render(dir: string): Manifest[] {
  const run = spawnSync(kubectl!, ['kustomize', join(K8S, dir)], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  return parseAllDocuments(run.stdout).map((d) => d.toJSON() as Manifest);
}
const one = (docs: Manifest[], kind: string) => {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0]!;
};
const probes = (c: Container) => [c.startupProbe, c.readinessProbe, c.livenessProbe].filter((p): p is Probe => !!p);
/** The image's volumes, as the Dockerfile declares them. */
const imageVolumes = () =>
  JSON.parse(
    /^VOLUME (.*)$/m.exec(readFileSync(join(REPO_ROOT, 'deploy/container/Dockerfile'), 'utf8'))![1]!,
  ) as string[];

interface Rendered {
  docs: Manifest[];
  pod: PodSpec;
  nucleus: Container;
  config: { server: { port: number; shutdownTimeoutMs: number }; plugin: { metrics: { namespace: string } } };
}

function renderDeployment(dir: string): Rendered {
  const docs = render(dir);
  const deployment = one(docs, 'Deployment');
  const pod = deployment.spec.template.spec as PodSpec;
  const nucleus = pod.containers.find((c) => c.name === 'nucleus')!;
  const configMap = one(docs, 'ConfigMap');
  assert.equal(pod.volumes?.find((v) => v.name === 'config')?.configMap?.name, configMap.metadata.name);
  return { docs, pod, nucleus, config: parse(configMap.data!['nucleus.yaml']!) as Rendered['config'] };
}

describe('Kubernetes manifests (kubectl kustomize deploy/k8s/…)', function () {
  this.timeout(180_000);

  before(function () {
    if (!kubectl) {
      console.log('      skipped: kubectl is not installed (apt-get install kubernetes-client)');
      this.skip();
    }
  });

  for (const dir of ['base', 'overlays/cpu', 'overlays/gpu-cuda']) {
    it(`${dir}: probes, port, grace period and security context agree with the config and the image`, () => {
      const { docs, pod, nucleus, config } = renderDeployment(dir);
      const port = nucleus.ports!.find((p) => p.name === 'http')!;
      assert.equal(port.containerPort, config.server.port, 'the container port is the config port');
      assert.ok(!nucleus.env?.some((e) => e.name === 'NUCLEUS_SERVER_PORT'), 'nothing overrides the config port');
      for (const probe of probes(nucleus)) {
        assert.ok(['/livez', '/readyz'].includes(probe.httpGet.path), probe.httpGet.path);
        assert.equal(probe.httpGet.port, 'http');
      }
      assert.equal(nucleus.livenessProbe?.httpGet.path, '/livez');
      assert.equal(nucleus.readinessProbe?.httpGet.path, '/readyz');

      // The pod is killed only after the preStop pause and the whole drain.
      const preStop = nucleus.lifecycle!.preStop!.exec!.command.join(' ');
      const pauseS = Number(/setTimeout\(\(\) => \{\}, (\d+)\)/.exec(preStop)![1]) / 1000;
      assert.ok(
        pod.terminationGracePeriodSeconds! >= pauseS + config.server.shutdownTimeoutMs / 1000,
        `grace ${pod.terminationGracePeriodSeconds} s covers ${pauseS} s + the ${config.server.shutdownTimeoutMs} ms drain`,
      );

      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.ok(pod.securityContext!.runAsUser! > 0);
      assert.equal(nucleus.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(nucleus.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(nucleus.securityContext?.capabilities?.drop, ['ALL']);
      assert.ok(nucleus.resources?.requests?.cpu && nucleus.resources.limits?.memory);
      // Every path the image writes to is a volume: a read-only root filesystem leaves nothing else.
      const mounts = nucleus.volumeMounts!.map((m) => m.mountPath);
      for (const path of imageVolumes()) assert.ok(mounts.includes(path), `${path} is mounted`);
      assert.equal(config.plugin.metrics.namespace, 'vllm');

      // The objects around it select this Deployment's pods and its named port.
      const labels = one(docs, 'Deployment').spec.template.metadata.labels as Record<string, string>;
      const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
      assert.ok(selects(one(docs, 'Service').spec.selector));
      assert.equal(one(docs, 'Service').spec.ports[0].targetPort, 'http');
      assert.ok(selects(one(docs, 'PodDisruptionBudget').spec.selector.matchLabels));
      const monitor = one(docs, 'ServiceMonitor');
      assert.equal(monitor.spec.endpoints[0].port, 'http');
      assert.equal(monitor.spec.endpoints[0].path, '/metrics');
      const hpa = one(docs, 'HorizontalPodAutoscaler');
      assert.equal(hpa.spec.scaleTargetRef.name, one(docs, 'Deployment').metadata.name);
      if (dir.includes('gpu')) {
        assert.equal(nucleus.resources?.limits?.['nvidia.com/gpu'], 1);
        assert.equal(nucleus.env?.find((e) => e.name === 'NUCLEUS_BACKEND')?.value, 'cuda');
      }
    });
  }

  it('KServe: a v2 ServingRuntime for onnx and gguf, and an InferenceService that uses it', () => {
    const docs = render('kserve');
    const runtime = one(docs, 'ServingRuntime');
    assert.deepEqual(runtime.spec.protocolVersions, ['v2']);
    const formats = (runtime.spec.supportedModelFormats as { name: string }[]).map((f) => f.name);
    assert.deepEqual(formats.sort(), ['gguf', 'onnx']);
    const container = runtime.spec.containers[0] as Container;
    assert.ok(container.args!.includes('{{.Name}}=/mnt/models'));
    const port = container.ports![0]!.containerPort;
    assert.equal(container.args![container.args!.indexOf('--port') + 1], String(port));
    for (const probe of probes(container)) assert.equal(probe.httpGet.port, port);
    const isvc = one(docs, 'InferenceService');
    assert.equal(isvc.spec.predictor.model.runtime, runtime.metadata.name);
    assert.ok(formats.includes(isvc.spec.predictor.model.modelFormat.name));
  });

  describe('against a real nucleus serve with the ConfigMap’s config', () => {
    let child: ChildProcess;
    let url: string;
    let rendered: Rendered;

    before(async () => {
      rendered = renderDeployment('base');
      const dir = tempDir('k8s-config');
      const file = join(dir, 'nucleus.yaml');
      writeFileSync(file, one(rendered.docs, 'ConfigMap').data!['nucleus.yaml']!);
      // Only what a test machine needs changed: loopback, a free port, the repository's model cache.
      child = spawn(
        process.execPath,
        [
          CLI,
          'serve',
          '--config',
          file,
          '--host',
          '127.0.0.1',
          '--port',
          '0',
          '--set',
          `cache.dir=${join(REPO_ROOT, '.cache/models')}`,
        ],
        { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '' } },
      );
      url = await followServer(child, 120_000).url;
    });
    after(async () => {
      if (child) await stopServer(child);
    });

    it('answers 200 on every probe path', async () => {
      for (const probe of probes(rendered.nucleus)) {
        const res = await fetch(`${url}${probe.httpGet.path}`);
        assert.equal(res.status, 200, `${probe.httpGet.path}: ${await res.text()}`);
      }
    });

    it('exposes the HPA metric (after the prometheus-adapter rename) and the endpoint picker’s metrics', async () => {
      // One generation, so the per-model engine gauges have their series.
      const chat = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: 'Once' }], max_tokens: 4 }),
      });
      assert.equal(chat.status, 200);
      const metrics = new Exposition(await (await fetch(`${url}/metrics`)).text());

      const adapter = parse(readFileSync(join(K8S, 'prometheus-adapter/rules.yaml'), 'utf8')) as {
        rules: { seriesQuery: string; name: { matches: string; as: string } }[];
      };
      const hpaMetric = one(rendered.docs, 'HorizontalPodAutoscaler').spec.metrics[0].pods.metric.name as string;
      const rule = adapter.rules.find((r) => r.name.as === hpaMetric);
      assert.ok(rule, `an adapter rule serves ${hpaMetric}`);
      const series = /^[^{]+/.exec(rule.seriesQuery)![0];
      assert.equal(series.replace(new RegExp(rule.name.matches), rule.name.as), hpaMetric);
      assert.equal(metrics.family(series).type, 'GAUGE');
      assert.ok(metrics.value(series, { model_name: 'stories260K' }) >= 0);

      // What the Gateway API Inference Extension's endpoint picker scrapes from a vLLM-compatible server: the
      // queue, the running batch and the KV-cache use, each with a value for the model.
      for (const name of ['vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:kv_cache_usage_perc']) {
        assert.equal(metrics.family(name).type, 'GAUGE', name);
        const value = metrics.value(name, { model_name: 'stories260K' });
        assert.ok(Number.isFinite(value) && value >= 0, `${name} = ${value}`);
      }
    });
  });
});
