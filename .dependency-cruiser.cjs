/**
 * Dependency rules (`npm run deps`): what the architecture says may import what.
 *
 * Paths are the resolved files, relative to the folder depcruise runs in (the repository root).
 * A workspace package resolves through its symlink to its built output (`@nucleus/core` →
 * `core/dist/index.js`); before a build it stays unresolved and is matched by its name instead.
 */

/** A folder of the repository, also when depcruise runs in a folder below the root (`../../core/`). */
const repo = (folders) => `^(\\.\\./)*${folders}/`;
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'plugin-imports-only-sdk',
      comment:
        'A plugin imports from Nucleus only @nucleus/sdk and its subpaths: not @nucleus/core, not another plugin, ' +
        'not a source file of the SDK. What a plugin needs from core becomes an SDK type or an extension point.',
      severity: 'error',
      from: { path: '^plugins/([^/]+)/src/' },
      to: {
        path: [repo('(core|sdk|plugins)'), '^@nucleus/'],
        pathNot: ['^plugins/$1/', repo('sdk/(testing/)?dist'), '^@nucleus/sdk($|/)'],
      },
    },
    {
      name: 'plugin-stays-in-its-folder',
      comment: 'A relative import from a plugin stays inside that plugin; anything else goes through a package.',
      severity: 'error',
      from: { path: '^plugins/([^/]+)/' },
      to: { dependencyTypes: ['local'], pathNot: '^plugins/$1/' },
    },
    {
      name: 'kernel-imports-no-engine',
      comment: 'The kernel wires what the container holds; it constructs no engine and names no engine module.',
      severity: 'error',
      from: { path: '^core/src/kernel/' },
      to: { path: '^core/src/engine/' },
    },
    {
      name: 'core-imports-no-plugin',
      comment: 'Core reaches plugins only through extension points, never by importing one.',
      severity: 'error',
      from: { path: '^core/' },
      to: { path: [repo('plugins'), '^@nucleus/(?!sdk($|/)|core($|/))'] },
    },
    {
      name: 'sdk-imports-no-core-or-plugin',
      comment: 'The SDK is what plugins build against; it depends on neither core nor any plugin.',
      severity: 'error',
      from: { path: '^sdk/src/' },
      to: { path: [repo('(core|plugins)'), '^@nucleus/(?!sdk($|/))'] },
    },
    {
      name: 'sdk-testing-imports-no-plugin',
      comment:
        'The test kit (@nucleus/sdk/testing) boots a real kernel, so it may import @nucleus/core (an optional ' +
        'peer dependency of the SDK), but no plugin.',
      severity: 'error',
      from: { path: '^sdk/testing/' },
      to: { path: [repo('plugins'), '^@nucleus/(?!sdk($|/)|core($|/))'] },
    },
    {
      name: 'no-circular',
      comment: 'No import cycles, type-only imports included: a cycle between injectable classes fails at load.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    // TypeScript 7 has no compiler API, so the sources are parsed with swc; type-only imports count too.
    parser: 'swc',
    tsPreCompilationDeps: true,
    // No tsconfig `paths` here: Node's own resolution (workspace symlinks, `.js` → `.ts`) is the whole story.
    doNotFollow: { path: ['node_modules', '(^|/)dist/'] },
    // Build output and fixtures (some break these rules on purpose) are not sources.
    exclude: { path: '^test/(dist|fixtures)/' },
    moduleSystems: ['es6', 'cjs'],
  },
};
