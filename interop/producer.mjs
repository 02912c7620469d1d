// A real JavaScript flag producer for `make interop`: evaluates flags of every JS type
// through the OpenFeature server SDK (InMemoryProvider + @openfeature/open-telemetry-hooks)
// or the LaunchDarkly Node SDK (TestData + @launchdarkly/node-server-sdk-otel TracingHook),
// exports OTLP/HTTP (JSON or protobuf, optionally gzip) to a flagscope server, and writes
// what a faithful receiver must store, shaped like shared/fixtures/otlp-js/*/expected.json.
//
// The expected fields come from what the producer evaluated (the SDK's evaluation
// details), never from the telemetry; only ids and timestamps, which the SDK makes up,
// are read from an in-memory copy of the same spans and log records.
//
//   node producer.mjs --endpoint http://127.0.0.1:PORT --out DIR --producer openfeature
//        --hook SpanEventHook|SpanHook|EventHook --encoding json|proto [--compression gzip]
//        [--service NAME] [--ld-spans] [--ld-environment-id ID]
//
// DIR gets expected.json (one entry per evaluation the producer sent) and run.json (the
// configuration, what the exporters reported, and what the producer never sends).

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { context, trace } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPLogExporter as OTLPLogExporterJson } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as OTLPLogExporterProto } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter as OTLPTraceExporterJson } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPTraceExporterProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchLogRecordProcessor,
  InMemoryLogRecordExporter,
  LoggerProvider,
  SimpleLogRecordProcessor,
} from '@opentelemetry/sdk-logs';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';

const { values: args } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    out: { type: 'string' },
    producer: { type: 'string' },
    hook: { type: 'string', default: '' },
    encoding: { type: 'string', default: 'json' },
    compression: { type: 'string', default: 'none' },
    service: { type: 'string' },
    'ld-spans': { type: 'boolean', default: false },
    'ld-environment-id': { type: 'string' },
  },
});
for (const name of ['endpoint', 'out', 'producer']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}
if (!['json', 'proto'].includes(args.encoding)) throw new Error('--encoding is json or proto');
if (!['none', 'gzip'].includes(args.compression)) throw new Error('--compression is none or gzip');
const SERVICE = args.service ?? `interop-${args.producer}`;

const HERE = dirname(fileURLToPath(import.meta.url));
const versionOf = (name) =>
  JSON.parse(readFileSync(join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;

// -- OpenTelemetry: OTLP exporters to flagscope, plus an in-memory copy for ids and times ----

const exportResults = [];
const traceIdOf = (item) =>
  (typeof item.spanContext === 'function' ? item.spanContext() : item.spanContext)?.traceId ?? null;
function watched(exporter, signal) {
  // Each export's outcome goes to run.json: a request the server refused is then visible.
  const send = exporter.export.bind(exporter);
  exporter.export = (items, done) =>
    send(items, (result) => {
      const ok = result.code === 0;
      const error = result.error;
      exportResults.push({
        signal,
        items: items.length,
        ok,
        error: error ? String(error.message ?? error) : null,
        status: error?.code ?? null,
        detail: error?.data ? String(error.data).slice(0, 500) : null,
        // Which traces the lost request carried, so the driver can say why records are missing.
        trace_ids: ok ? [] : [...new Set(items.map(traceIdOf))],
      });
      done(result);
    });
  return exporter;
}

const compression = args.compression === 'gzip' ? 'gzip' : 'none';
const base = args.endpoint.replace(/\/$/, '');
const TraceExporter = args.encoding === 'json' ? OTLPTraceExporterJson : OTLPTraceExporterProto;
const LogExporter = args.encoding === 'json' ? OTLPLogExporterJson : OTLPLogExporterProto;
const resource = resourceFromAttributes({ 'service.name': SERVICE, 'service.version': '1.2.3' });

const spanCopy = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({
  resource,
  spanProcessors: [
    new BatchSpanProcessor(
      watched(new TraceExporter({ url: `${base}/v1/traces`, compression }), 'traces'),
      { maxQueueSize: 100000, maxExportBatchSize: 100000, scheduledDelayMillis: 600000 },
    ),
    new SimpleSpanProcessor(spanCopy),
  ],
});
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(tracerProvider);

const logCopy = new InMemoryLogRecordExporter();
const loggerProvider = new LoggerProvider({
  resource,
  processors: [
    // sdk-logs 0.223 processors take one options object.
    new BatchLogRecordProcessor({
      exporter: watched(new LogExporter({ url: `${base}/v1/logs`, compression }), 'logs'),
      maxQueueSize: 100000,
      maxExportBatchSize: 100000,
      scheduledDelayMillis: 600000,
    }),
    new SimpleLogRecordProcessor({ exporter: logCopy }),
  ],
});
logs.setGlobalLoggerProvider(loggerProvider);

const tracer = trace.getTracer('js-producer-app');

// One OTLP request per simulated request: a request the server rejects loses only its own
// evaluations, and the driver can tell which.
async function flush() {
  for (const provider of [tracerProvider, loggerProvider]) {
    try {
      await provider.forceFlush();
    } catch {
      // Already in exportResults, which run.json reports.
    }
  }
}

// -- Expected records ---------------------------------------------------------------------

const expected = [];
const notes = [];

function jsType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function specialNumber(value) {
  // JSON cannot hold these: value is null in expected.json and value_special says which.
  if (typeof value !== 'number') return null;
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  if (Object.is(value, -0)) return '-0';
  return null;
}

function activeIds() {
  const span = trace.getActiveSpan();
  if (!span) return { trace_id: null, span_id: null };
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

function entry(fields) {
  const special = specialNumber(fields.value);
  const record = {
    flag_key: fields.flag_key,
    js_type: jsType(fields.value),
    value: special && special !== '-0' ? null : fields.value,
    variant: fields.variant ?? null,
    reason: fields.reason,
    targeting_key: fields.targeting_key ?? null,
    provider_name: fields.provider_name,
    flag_set_id: fields.flag_set_id ?? null,
    version: fields.version ?? null,
    error_type: fields.error_type ?? null,
    error_message: fields.error_message ?? null,
    service_name: SERVICE,
    attributes: fields.attributes ?? {},
    ...activeIds(),
    timestamp_ns: null, // filled from the SDK's own copy once the spans have ended
  };
  if (special) record.value_special = special;
  if (fields.js_truth) record.js_truth = fields.js_truth;
  expected.push(record);
  return record;
}

// -- OpenFeature ----------------------------------------------------------------------------

// The OpenFeature hooks 1.0.0 send a string as it is and an object or array as its JSON text,
// both as a stringValue: the object {"a":1} and the string '{"a":1}' are the same bytes on
// the wire, and no receiver can tell them apart. Such records say so, with the other reading.
function markAmbiguous(record, value) {
  let other;
  if (value !== null && typeof value === 'object') {
    other = JSON.stringify(value);
  } else if (typeof value === 'string') {
    try {
      const parsed = JSON.parse(value);
      if (parsed !== null && typeof parsed === 'object') other = parsed;
    } catch {
      // not JSON text: only a string
    }
  }
  if (other !== undefined) {
    record.wire_ambiguous = true;
    record.value_other_reading = other;
  }
}

const OBJECT_STANDARD = { methods: ['post'], free_over_cents: 5000, nested: { a: null, b: [1.5, true] } };
const OBJECT_EXPRESS = { methods: ['post', 'courier'], free_over_cents: 0, nested: {} };

function openFeatureFlags() {
  const byUser = (on, off) => (ctx) => (ctx.targetingKey === 'beta-tester' ? on : off);
  const only = (value) => ({ variants: { only: value }, defaultVariant: 'only', disabled: false });
  return {
    'bool-flag': {
      variants: { on: true, off: false },
      defaultVariant: 'off',
      disabled: false,
      contextEvaluator: byUser('on', 'off'),
    },
    'static-bool': { variants: { on: true, off: false }, defaultVariant: 'on', disabled: false },
    'string-flag': {
      variants: { red: '#c05543', blue: '#0000ff' },
      defaultVariant: 'red',
      disabled: false,
      contextEvaluator: byUser('blue', 'red'),
    },
    // Strings that look like JSON, or like numbers: a string must stay a string.
    'str-int': only('42'),
    'str-float': only('1.0'),
    'str-exp': only('1e3'),
    'str-true': only('true'),
    'str-false': only('false'),
    'str-null': only('null'),
    'str-object': only('{"a":1}'),
    'str-array': only('[1,2]'),
    'str-quoted': only('"42"'),
    'str-negative': only('-7'),
    'str-nan': only('NaN'),
    'str-neg-infinity': only('-Infinity'),
    'str-padded': only(' 42 '),
    'str-empty': only(''),
    'str-unicode': only('naïve ✓ 🚀'),
    'str-controls': only('tab\there\nnew line'),
    'checkout/v2.ünï': only('slash-and-unicode-key'),
    // Numbers: JS has one number type; integral ones go out as intValue.
    'int-flag': {
      variants: { ten: 10, 'forty-two': 42 },
      defaultVariant: 'ten',
      disabled: false,
      contextEvaluator: byUser('forty-two', 'ten'),
    },
    'zero-flag': { variants: { zero: 0 }, defaultVariant: 'zero', disabled: false },
    'negative-flag': { variants: { neg: -5 }, defaultVariant: 'neg', disabled: false },
    'float-flag': {
      variants: { pi: 3.14159, two: 2.0 },
      defaultVariant: 'pi',
      disabled: false,
      contextEvaluator: byUser('two', 'pi'),
    },
    'float-sum': only(0.1 + 0.2),
    'tiny-float': only(5e-324),
    'max-safe-int': { variants: { max: 9007199254740991 }, defaultVariant: 'max', disabled: false },
    'beyond-safe-int': only(2 ** 53 + 2),
    'pow2-62': only(2 ** 62),
    'min-int64': only(-(2 ** 63)),
    'pow2-63': only(2 ** 63),
    'huge-int': only(1e21),
    'max-double': only(Number.MAX_VALUE),
    'negative-zero': only(-0),
    'nan-flag': only(NaN),
    'infinity-flag': only(Infinity),
    'neg-infinity-flag': only(-Infinity),
    // Objects and arrays (sent as JSON text by the hooks).
    'object-flag': {
      variants: { standard: OBJECT_STANDARD, express: OBJECT_EXPRESS },
      defaultVariant: 'standard',
      disabled: false,
      contextEvaluator: byUser('express', 'standard'),
    },
    'array-flag': { variants: { list: [1, 'two', true, null] }, defaultVariant: 'list', disabled: false },
    'empty-object': { variants: { empty: {} }, defaultVariant: 'empty', disabled: false },
    'empty-array': only([]),
    'null-object': { variants: { none: null }, defaultVariant: 'none', disabled: false },
    'object-numbers': only({ big: 1e21, one: 1.0, half: -0.5, text: '42', 'ключ': 'значение' }),
    'nested-array': only([{ a: [{ b: null }] }, [[]], 'x']),
    // Errors and special reasons.
    'disabled-flag': { variants: { on: true, off: false }, defaultVariant: 'on', disabled: true },
    'broken-variant': { variants: { on: true }, defaultVariant: 'missing', disabled: false },
    'meta-flag': { variants: { on: 'yes', off: 'no' }, defaultVariant: 'on', disabled: false },
    'custom-reason': { variants: { b: 'arm-b' }, defaultVariant: 'b', disabled: false },
  };
}

// [method, flag key, default value]
const OF_EVALUATIONS = [
  ['Boolean', 'bool-flag', false],
  ['Boolean', 'static-bool', false],
  ['String', 'string-flag', 'fallback'],
  ...[
    'str-int', 'str-float', 'str-exp', 'str-true', 'str-false', 'str-null', 'str-object',
    'str-array', 'str-quoted', 'str-negative', 'str-nan', 'str-neg-infinity', 'str-padded',
    'str-empty', 'str-unicode', 'str-controls', 'checkout/v2.ünï',
  ].map((key) => ['String', key, 'fallback']),
  ...[
    'int-flag', 'zero-flag', 'negative-flag', 'float-flag', 'float-sum', 'tiny-float',
    'max-safe-int', 'beyond-safe-int', 'pow2-62',
  ].map((key) => ['Number', key, -1]),
  ...[
    'object-flag', 'array-flag', 'empty-object', 'empty-array', 'null-object',
    'object-numbers', 'nested-array',
  ].map((key) => ['Object', key, {}]),
  ['Boolean', 'missing-flag', true], // flag_not_found
  ['Number', 'string-flag', -1], // type_mismatch
  ['String', 'object-flag', 'fallback'], // type_mismatch
  ['Boolean', 'disabled-flag', false], // reason disabled, the default served
  ['Boolean', 'broken-variant', false], // general error
  ['String', 'meta-flag', 'no'], // flag metadata: contextId, flagSetId, version
  ['String', 'custom-reason', 'fallback'], // a provider's own reason
  ['Boolean', 'bool-flag', true], // the same flag twice in one request
];
// Numbers the OTLP/JSON exporter writes as out-of-int64 intValue or as doubleValue null:
// each evaluated in a request of its own, so that a receiver refusing one loses nothing else.
const OF_EDGE_NUMBERS = [
  ['Number', 'min-int64', -1],
  ['Number', 'pow2-63', -1],
  ['Number', 'huge-int', -1],
  ['Number', 'max-double', -1],
  ['Number', 'negative-zero', -1],
  ['Number', 'nan-flag', -1],
  ['Number', 'infinity-flag', -1],
  ['Number', 'neg-infinity-flag', -1],
];

async function runOpenFeature() {
  const { OpenFeature, InMemoryProvider } = await import('@openfeature/server-sdk');
  const hooks = await import('@openfeature/open-telemetry-hooks');
  const Hook = hooks[args.hook];
  if (!['SpanEventHook', 'SpanHook', 'EventHook'].includes(args.hook) || !Hook) {
    throw new Error('--hook is SpanEventHook, SpanHook or EventHook for openfeature');
  }

  class Provider extends InMemoryProvider {
    // InMemoryProvider has no flag metadata and only standard reasons; these two flags add
    // what other providers send.
    async resolveStringEvaluation(flagKey, defaultValue, ctx, logger) {
      const result = await super.resolveStringEvaluation(flagKey, defaultValue, ctx, logger);
      if (flagKey === 'meta-flag') {
        return { ...result, flagMetadata: { contextId: 'ctx-override', flagSetId: 'proj-1', version: 'v7' } };
      }
      if (flagKey === 'custom-reason') return { ...result, reason: 'Experiment-Arm' };
      return result;
    }
  }

  const quiet = () => {};
  OpenFeature.setLogger({ error: quiet, warn: quiet, info: quiet, debug: quiet });
  await OpenFeature.setProviderAndWait(new Provider(openFeatureFlags()));
  OpenFeature.addHooks(new Hook());
  const client = OpenFeature.getClient('interop');
  const providerName = client.metadata.providerMetadata.name;

  async function evaluate(method, key, defaultValue, ctx) {
    const details = await client[`get${method}Details`](key, defaultValue, ctx);
    // What the OpenFeature telemetry conventions say of these details.
    const meta = details.flagMetadata ?? {};
    const isError = details.reason === 'ERROR';
    const record = entry({
      flag_key: key,
      value: details.value,
      variant: details.variant || null,
      reason: (details.reason ?? 'UNKNOWN').toLowerCase(),
      targeting_key: (meta.contextId ?? ctx.targetingKey) || null,
      provider_name: providerName,
      flag_set_id: meta.flagSetId || null,
      version: meta.version || null,
      error_type: isError ? (details.errorCode ?? 'GENERAL').toLowerCase() : null,
      error_message: isError ? details.errorMessage || null : null,
    });
    markAmbiguous(record, details.value);
    // SpanEventHook sends nothing outside a span; the other two hooks always send.
    if (args.hook === 'SpanEventHook' && record.span_id === null) {
      expected.pop();
      notes.push(`${key} outside any span: SpanEventHook sends nothing`);
    }
  }

  async function request(name, ctx, evaluations) {
    await tracer.startActiveSpan(`request ${name}`, async (span) => {
      for (const [method, key, defaultValue] of evaluations) {
        await evaluate(method, key, defaultValue, ctx);
      }
      span.end();
    });
    await flush();
  }

  await request('user-1', { targetingKey: 'user-1', plan: 'free' }, OF_EVALUATIONS);
  await request('beta-tester', { targetingKey: 'beta-tester' }, OF_EVALUATIONS);
  await request('anonymous', {}, OF_EVALUATIONS.slice(0, 3));
  await request('empty-key', { targetingKey: '' }, [['Boolean', 'bool-flag', false]]);
  for (const evaluation of OF_EDGE_NUMBERS) {
    await request(`edge ${evaluation[1]}`, { targetingKey: 'user-1' }, [evaluation]);
  }
  for (const [method, key, defaultValue] of [
    ['Boolean', 'bool-flag', false],
    ['Boolean', 'missing-flag', false],
  ]) {
    await evaluate(method, key, defaultValue, { targetingKey: 'no-span-user' });
  }
  await flush();
  await OpenFeature.close();
}

// -- LaunchDarkly ---------------------------------------------------------------------------

function ldCanonicalKey(ldContext) {
  // LaunchDarkly's canonical key, written out here from its documented rule: a single
  // "user" context is its key; otherwise kind:key per kind (sorted), with % and : escaped.
  const escape = (key) => key.replace(/%/g, '%25').replace(/:/g, '%3A');
  if (ldContext.kind === 'multi') {
    return Object.keys(ldContext)
      .filter((kind) => kind !== 'kind')
      .sort()
      .map((kind) => `${kind}:${escape(ldContext[kind].key)}`)
      .join(':');
  }
  const kind = ldContext.kind ?? 'user';
  return kind === 'user' ? ldContext.key : `${kind}:${escape(ldContext.key)}`;
}

const LD_EVALUATIONS = [
  ['boolVariationDetail', 'bool-flag', false],
  ['stringVariationDetail', 'string-flag', 'fallback'],
  ['stringVariationDetail', 'str-int', 'fallback'],
  ['stringVariationDetail', 'str-true', 'fallback'],
  ['stringVariationDetail', 'str-null', 'fallback'],
  ['stringVariationDetail', 'str-object', 'fallback'],
  ['stringVariationDetail', 'str-quoted', 'fallback'],
  ['stringVariationDetail', 'str-unicode', 'fallback'],
  ['numberVariationDetail', 'int-flag', -1],
  ['numberVariationDetail', 'float-flag', -1],
  ['numberVariationDetail', 'zero-flag', -1],
  ['numberVariationDetail', 'max-safe-int', -1],
  ['numberVariationDetail', 'huge-int', -1],
  ['jsonVariationDetail', 'object-flag', {}],
  ['jsonVariationDetail', 'array-flag', []],
  ['variationDetail', 'bool-flag', null],
  ['boolVariationDetail', 'off-flag', true],
  ['boolVariationDetail', 'missing-flag', true], // FLAG_NOT_FOUND: sent like a success
  ['numberVariationDetail', 'string-flag', -1], // WRONG_TYPE: sent like a success
];

async function runLaunchDarkly() {
  const ld = await import('@launchdarkly/node-server-sdk');
  const { TracingHook } = await import('@launchdarkly/node-server-sdk-otel');
  const td = new ld.integrations.TestData();
  const flag = (key) => td.flag(key);
  td.update(flag('bool-flag').booleanFlag().variationForUser('beta-tester', true).fallthroughVariation(false));
  td.update(flag('string-flag').variations('#c05543', '#0000ff').variationForUser('beta-tester', 1).fallthroughVariation(0));
  for (const [key, value] of [
    ['str-int', '42'],
    ['str-true', 'true'],
    ['str-null', 'null'],
    ['str-object', '{"a":1}'],
    ['str-quoted', '"42"'],
    ['str-unicode', 'naïve ✓ 🚀'],
    ['float-flag', 3.14159],
    ['zero-flag', 0],
    ['max-safe-int', 9007199254740991],
    ['huge-int', 1e21],
    ['object-flag', { methods: ['post'], free_over_cents: 5000, nested: { a: null } }],
    ['array-flag', [1, 'two', true]],
  ]) {
    td.update(flag(key).valueForAll(value));
  }
  td.update(flag('int-flag').variations(10, 42).variationForUser('beta-tester', 1).fallthroughVariation(0));
  td.update(flag('off-flag').booleanFlag().on(false).offVariation(false));

  const environmentId = args['ld-environment-id'];
  const hook = new TracingHook({
    includeValue: true,
    spans: args['ld-spans'],
    ...(environmentId ? { environmentId } : {}),
  });
  const client = ld.init('sdk-key-interop-offline', {
    updateProcessor: td.getFactory(),
    sendEvents: false,
    diagnosticOptOut: true,
    hooks: [hook],
    logger: ld.basicLogger({ level: 'warn' }),
  });
  await client.waitForInitialization({ timeout: 10 });

  async function evaluate(method, key, defaultValue, ldContext) {
    const detail = await client[method](key, ldContext, defaultValue);
    const attributes = {};
    if (typeof detail.variationIndex === 'number') {
      attributes['feature_flag.result.variationIndex'] = detail.variationIndex;
    }
    if (detail.reason?.inExperiment) attributes['feature_flag.result.reason.inExperiment'] = true;
    // The hook sends neither reason, variant nor error: a faithful receiver has none.
    const record = entry({
      flag_key: key,
      value: detail.value,
      reason: 'unknown',
      targeting_key: ldCanonicalKey(ldContext),
      provider_name: 'LaunchDarkly',
      flag_set_id: environmentId ?? null,
      attributes,
      js_truth: { reason: detail.reason, variationIndex: detail.variationIndex ?? null },
    });
    if (record.span_id === null) {
      expected.pop();
      notes.push(`${key} outside any span: the LD hook sends nothing`);
    }
  }

  async function request(name, ldContext) {
    await tracer.startActiveSpan(`request ${name}`, async (span) => {
      for (const [method, key, defaultValue] of LD_EVALUATIONS) {
        await evaluate(method, key, defaultValue, ldContext);
      }
      span.end();
    });
    await flush();
  }

  await request('user-1', { kind: 'user', key: 'user-1' });
  await request('beta-tester', { kind: 'user', key: 'beta-tester', name: 'Beta' });
  await request('multi', { kind: 'multi', user: { key: 'u-9' }, org: { key: 'acme' } });
  await request('org', { kind: 'org', key: 'acme:east' });
  await evaluate('boolVariationDetail', 'bool-flag', false, { kind: 'user', key: 'no-span-user' });
  await flush();
  client.close();
}

// -- Ids and times from the SDK's own copy ---------------------------------------------------

const EVENT_NAME = args.producer === 'launchdarkly' ? 'feature_flag' : 'feature_flag.evaluation';
const hex = (value) => value ?? null;
const nanos = ([seconds, nanoseconds]) => BigInt(seconds) * 1000000000n + BigInt(nanoseconds);

function fillIdsAndTimes() {
  const spans = spanCopy.getFinishedSpans();
  const attributeKey = (attributes) => attributes?.['feature_flag.key'];
  const check = (record, key, where) => {
    if (key !== record.flag_key) {
      throw new Error(`${where}: expected flag ${record.flag_key}, the SDK copy says ${key}`);
    }
  };
  if (args.hook === 'SpanHook') {
    // One child span per evaluation, in evaluation order.
    const evaluationSpans = spans.filter((span) => span.name === 'feature_flag.evaluation');
    if (evaluationSpans.length !== expected.length) {
      throw new Error(`${expected.length} evaluations but ${evaluationSpans.length} evaluation spans`);
    }
    expected.forEach((record, index) => {
      const span = evaluationSpans[index];
      check(record, attributeKey(span.attributes), 'SpanHook span');
      const { traceId, spanId } = span.spanContext();
      const parent = span.parentSpanContext?.spanId ?? null;
      if (record.span_id !== null && parent !== record.span_id) {
        throw new Error(`SpanHook span ${spanId} has parent ${parent}, not ${record.span_id}`);
      }
      record.trace_id = traceId;
      record.span_id = spanId;
      record.parent_span_id = hex(parent);
      record.timestamp_ns = nanos(span.endTime);
      record.evaluation_duration_ms = Number(nanos(span.endTime) - nanos(span.startTime)) / 1e6;
    });
  } else if (args.hook === 'EventHook') {
    const records = logCopy.getFinishedLogRecords().filter((log) => log.eventName === EVENT_NAME);
    if (records.length !== expected.length) {
      throw new Error(`${expected.length} evaluations but ${records.length} evaluation log records`);
    }
    expected.forEach((record, index) => {
      const log = records[index];
      check(record, attributeKey(log.attributes), 'EventHook log record');
      const ids = log.spanContext ?? {};
      if ((ids.spanId ?? null) !== record.span_id) {
        throw new Error(`log record of ${record.flag_key} is in span ${ids.spanId}, not ${record.span_id}`);
      }
      record.timestamp_ns = nanos(log.hrTime);
    });
  } else {
    // Span events on the request span: the k-th event of a span is its k-th evaluation.
    const bySpan = new Map(spans.map((span) => [span.spanContext().spanId, span]));
    const seen = new Map();
    for (const record of expected) {
      const span = bySpan.get(record.span_id);
      const index = seen.get(record.span_id) ?? 0;
      seen.set(record.span_id, index + 1);
      const event = span?.events.filter((item) => item.name === EVENT_NAME)[index];
      if (!event) throw new Error(`no ${EVENT_NAME} event #${index} on span ${record.span_id}`);
      check(record, attributeKey(event.attributes), 'span event');
      record.timestamp_ns = nanos(event.time);
    }
  }
}

// -- Main -----------------------------------------------------------------------------------

if (args.producer === 'openfeature') await runOpenFeature();
else if (args.producer === 'launchdarkly') await runLaunchDarkly();
else throw new Error('--producer is openfeature or launchdarkly');

await flush();
fillIdsAndTimes(); // before shutdown, which empties the in-memory copies
await tracerProvider.shutdown();
await loggerProvider.shutdown();

// timestamp_ns needs all 64 bits: written as a JSON integer, not a JS number.
const toJson = (data) =>
  JSON.stringify(data, (_, value) => (typeof value === 'bigint' ? `@bigint:${value}` : value), 2).replace(
    /"@bigint:(-?\d+)"/g,
    '$1',
  );
mkdirSync(args.out, { recursive: true });
writeFileSync(join(args.out, 'expected.json'), `${toJson(expected)}\n`);
const run = {
  label: SERVICE,
  producer: args.producer,
  hook: args.producer === 'launchdarkly' ? `TracingHook(spans=${args['ld-spans']}, includeValue=true)` : args.hook,
  encoding: args.encoding,
  compression: args.compression,
  service_name: SERVICE,
  versions: Object.fromEntries(
    (args.producer === 'launchdarkly'
      ? ['@launchdarkly/node-server-sdk', '@launchdarkly/node-server-sdk-otel']
      : ['@openfeature/server-sdk', '@openfeature/open-telemetry-hooks']
    )
      .concat(['@opentelemetry/sdk-trace-base', '@opentelemetry/exporter-trace-otlp-http'])
      .map((name) => [name, versionOf(name)]),
  ),
  exports: exportResults,
  producer_notes: notes,
  expected_records: expected.length,
};
writeFileSync(join(args.out, 'run.json'), `${toJson(run)}\n`);
console.log(`${SERVICE}: ${expected.length} evaluations sent, ${exportResults.filter((r) => !r.ok).length} exports failed`);
