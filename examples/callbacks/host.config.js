// JavaScript calling back into its caller: a Python (or C) callable in a
// call's data arrives here as an async function (docs/values.md,
// "Callables"). Try it from Python: README.md, "JavaScript calling Python", and
// docs/python.md.
module.exports = {
  functions: {
    // awaits two callables of the caller: a logger and a fetcher
    async render(data) {
      await data.log('rendering ' + data.title);
      const body = await data.fetch('/page/' + data.title);
      return '<h1>' + data.title + '</h1>' + body;
    },
    // never returns: only its deadline or a cancel stops it
    spin() {
      for (;;) {}
    },
  },
  timeout: 60000,
};
