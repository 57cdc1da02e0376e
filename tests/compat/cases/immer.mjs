// immer (ES module): produce with structural sharing, patches, frozen results.
import { produce, produceWithPatches, enablePatches, isDraft } from 'immer';

enablePatches();

export default {
  functions: {
    run(data) {
      const next = produce(data, (draft) => {
        draft.todos.push({ title: 'new', done: false });
        draft.todos[0].done = true;
      });
      const [, patches] = produceWithPatches(data, (d) => { d.count += 1; });
      return { next, shared: next.todos[1] === data.todos[1], frozen: Object.isFrozen(next), patches, draft: isDraft(next) };
    },
  },
  compat: {
    package: 'immer',
    calls: [['run', { count: 1, todos: [{ title: 'a', done: false }, { title: 'b', done: false }] }]],
  },
};
