// nanoid (ES module only): random ids checked by length and alphabet.
import { nanoid, customAlphabet, urlAlphabet } from 'nanoid';

export default {
  functions: {
    run(data) {
      const id = nanoid();
      const hex = customAlphabet('0123456789abcdef', data.size)();
      return {
        length: id.length,
        alphabet: [...id].every((c) => urlAlphabet.includes(c)),
        hex: /^[0-9a-f]+$/.test(hex) && hex.length === data.size,
        distinct: nanoid() !== nanoid(),
      };
    },
  },
  compat: {
    package: 'nanoid',
    calls: [['run', { size: 12 }]],
  },
};
