// A process of its own that asks GET /health back to back for a while and reports each answer's latency to its
// parent: the probe never shares an event loop with the load generator or the server it measures.
const [url, seconds] = [process.argv[2]!, Number(process.argv[3])];
const latencies: number[] = [];
let errors = 0;
const end = performance.now() + seconds * 1000;
while (performance.now() < end) {
  const started = performance.now();
  try {
    const res = await fetch(`${url}/health`);
    await res.arrayBuffer();
    if (res.ok) latencies.push(performance.now() - started);
    else errors++;
  } catch {
    errors++;
  }
  // About 100 probes a second: the probe measures the server, it is not load itself.
  await new Promise((resolve) => setTimeout(resolve, 10));
}
process.send!({ latencies, errors });
