// The layering of pool-leak, checked by `npm run lint` (dependency-cruiser). Each rule names the
// layer it protects; a broken rule fails lint with the offending import. The layers are the
// folders of packages/instrumentation-pool-leak/src (see its README, "Source layout").
const SRC = '^packages/instrumentation-pool-leak/src/';
const FACE = `${SRC}[^/]+\\.ts$`;
const CORE = `${SRC}core/`;
const CALL_SITE = `${SRC}call-site/`;
const SIGNALS = `${SRC}signals/`;
const REGISTER = `${SRC}register/`;
const ADAPTERS = `${SRC}adapters/`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import circles anywhere (type-only imports count too): move what both sides need to where it belongs.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-knows-no-library',
      severity: 'error',
      comment: 'The lease core imports nothing from adapters/, register/ or the face (index, instrumentation, config, types).',
      from: { path: CORE },
      to: { path: [ADAPTERS, REGISTER, FACE] },
    },
    {
      name: 'call-site-below-core',
      severity: 'error',
      comment: 'Stack capture and call paths know nothing of leases, adapters or registration.',
      from: { path: CALL_SITE },
      to: { path: [CORE, ADAPTERS, REGISTER, FACE] },
    },
    {
      name: 'signals-are-leaves',
      severity: 'error',
      comment: 'Signals (metrics, semconv names, summaries, error enrichment) take plain data: they import no other layer.',
      from: { path: SIGNALS },
      to: { path: [CORE, CALL_SITE, ADAPTERS, REGISTER, FACE] },
    },
    {
      name: 'adapters-use-core-api-only',
      severity: 'error',
      comment: "Adapters reach the core through core/index.ts (its published types) and the kit; never a core module's internals.",
      from: { path: ADAPTERS },
      to: { path: [`${CORE}(?!index\\.ts$)`, CALL_SITE, SIGNALS, REGISTER, FACE] },
    },
    {
      name: 'adapters-share-the-kit',
      severity: 'error',
      comment: 'The kit serves every adapter and depends on none of them.',
      from: { path: `${ADAPTERS}kit/` },
      to: { path: `${ADAPTERS}(?!kit/|libraries\\.ts$)` },
    },
    {
      name: 'demo-uses-public-entry',
      severity: 'error',
      comment: 'The demo imports the instrumentation only through its public entry points, as an application would.',
      from: { path: '^packages/exporter-demo/src/' },
      to: {
        path: '^packages/instrumentation-pool-leak/',
        pathNot: '^packages/instrumentation-pool-leak/(src/index\\.ts|src/register/index\\.ts|build/src/index\\.(js|d\\.ts)|build/src/register/index\\.(js|d\\.ts)|package\\.json)$',
      },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|build)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
