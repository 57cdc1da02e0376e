// change-case 5 (ES module only).
import { camelCase, snakeCase, pascalCase, constantCase, kebabCase, sentenceCase } from 'change-case';

export default {
  functions: {
    run(data) {
      return data.texts.map((t) => [camelCase(t), snakeCase(t), pascalCase(t), constantCase(t), kebabCase(t), sentenceCase(t)]);
    },
  },
  compat: { package: 'change-case', calls: [['run', { texts: ['hello world', 'XMLHttpRequest id', 'version 1.2.3'] }]] },
};
