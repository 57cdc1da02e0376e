// jsdiff (ES modules): word diffs and unified patches.
import { diffWords, createTwoFilesPatch, applyPatch } from 'diff';

export default {
  functions: {
    run(data) {
      const patch = createTwoFilesPatch('a.txt', 'b.txt', data.a, data.b, 'old', 'new');
      return { words: diffWords('the quick brown fox', 'the slow brown dog').map((p) => [p.added || false, p.removed || false, p.value]), patch, applied: applyPatch(data.a, patch) };
    },
  },
  compat: { package: 'diff', calls: [['run', { a: 'line 1\nline 2\nline 3\n', b: 'line 1\nline two\nline 3\nline 4\n' }]] },
};
