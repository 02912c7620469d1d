// A real OpenFeature MetricsHook run for flagscope's metrics receiver: evaluates flags through
// the OpenFeature server SDK (InMemoryProvider + @openfeature/open-telemetry-hooks MetricsHook),
// exports the hook's counters with the OpenTelemetry JS metrics SDK over OTLP/HTTP (JSON or
// protobuf) to ENDPOINT/v1/metrics, twice (cumulative counters: the second export repeats the
// first one's counts plus the new ones), and writes what a faithful receiver must count.
//
//   node metrics_producer.mjs --endpoint http://127.0.0.1:PORT --out DIR --encoding json|proto
//
// DIR gets expected.json: per flag, variant and reason, how many evaluations succeeded
// (the SDK's evaluation details, never the telemetry), and per flag how many failed.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { metrics } from '@opentelemetry/api';
import { OTLPMetricExporter as OTLPMetricExporterJson } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPMetricExporterProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';

const { values: args } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    out: { type: 'string' },
    encoding: { type: 'string', default: 'json' },
  },
});
for (const name of ['endpoint', 'out']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}
const Exporter = args.encoding === 'proto' ? OTLPMetricExporterProto : OTLPMetricExporterJson;
const exporter = new Exporter({ url: `${args.endpoint}/v1/metrics` });
// A long interval: the two exports below are forced, so the recording is the same every run.
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
const provider = new MeterProvider({
  resource: resourceFromAttributes({
    'service.name': 'metrics-shop',
    'telemetry.sdk.language': 'nodejs',
  }),
  readers: [reader],
});
metrics.setGlobalMeterProvider(provider);

const { OpenFeature, InMemoryProvider } = await import('@openfeature/server-sdk');
const { MetricsHook } = await import('@openfeature/open-telemetry-hooks');

await OpenFeature.setProviderAndWait(
  new InMemoryProvider({
    'new-checkout': {
      variants: { on: true, off: false },
      defaultVariant: 'off',
      disabled: false,
      contextEvaluator: (context) => (context.targetingKey?.startsWith('beta-') ? 'on' : 'off'),
    },
    'banner-color': {
      variants: { red: '#c05543', blue: '#0000ff' },
      defaultVariant: 'red',
      disabled: false,
    },
    'max-items': { variants: { ten: 10 }, defaultVariant: 'ten', disabled: false },
  }),
);
OpenFeature.addHooks(new MetricsHook());
const client = OpenFeature.getClient('metrics-shop');

const successes = new Map();
const errors = new Map();
async function evaluate(kind, key, fallback, targetingKey) {
  const context = targetingKey ? { targetingKey } : {};
  const details = await client[`get${kind}Details`](key, fallback, context);
  if (details.errorCode) {
    errors.set(key, (errors.get(key) ?? 0) + 1);
    return;
  }
  const id = JSON.stringify([key, details.variant ?? String(details.value), details.reason ?? 'UNKNOWN']);
  successes.set(id, (successes.get(id) ?? 0) + 1);
}

async function round(users) {
  for (const user of users) {
    await evaluate('Boolean', 'new-checkout', false, user);
    await evaluate('String', 'banner-color', 'grey', user);
  }
  await evaluate('Number', 'max-items', 5);
  await evaluate('Boolean', 'no-such-flag', false, 'u-1');
  await evaluate('Boolean', 'max-items', false, 'u-1'); // type mismatch: an error
}

await round(['u-1', 'u-2', 'beta-3']);
await provider.forceFlush();
await round(['beta-4', 'u-5']);
await provider.forceFlush();
await provider.shutdown();

mkdirSync(args.out, { recursive: true });
const expected = {
  producer: '@openfeature/server-sdk 1.23.0, @openfeature/open-telemetry-hooks 1.0.0 MetricsHook',
  exports: 2,
  successes: [...successes].map(([id, count]) => {
    const [flag_key, variant, reason] = JSON.parse(id);
    return { flag_key, variant, reason, count };
  }),
  errors: Object.fromEntries(errors),
};
writeFileSync(join(args.out, 'expected.json'), `${JSON.stringify(expected, null, 2)}\n`);
