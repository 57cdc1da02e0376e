// TypeScript's transpileModule: the compiler loads in full (it probes for
// fs, path, os and more at load time) and transpiles without a file system.
const ts = require('typescript');

module.exports = {
  functions: {
    transpile(data) {
      const out = ts.transpileModule(data.source, {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2019 },
        reportDiagnostics: true,
        fileName: 'input.ts',
      });
      return { code: out.outputText, diagnostics: (out.diagnostics || []).length };
    },
    version() { return ts.version; },
  },
  timeout: 60000,
  compat: {
    package: 'typescript',
    calls: [
      ['transpile', { source: 'enum Color { Red, Green }\nexport class A<T> {\n' +
        '  constructor(private x: T) {}\n  get(): T { return this.x ?? (null as any); }\n}\n' +
        'export const c: Color = Color.Green;\nexport default async (a?: {b?: number}) => a?.b;\n' }],
      ['version', {}],
    ],
  },
};
