// A js-host style config: jshost loads it once per worker and calls its
// functions by name. Try: jshost call examples/hello/host.config.js hello_world '{"name": "Foo"}'
let calls = 0; // state in closures lives as long as the worker

module.exports = {
  functions: {
    // js-host's classic shape: answer through the callback
    hello_world(data, cb) {
      cb(null, 'Hello, ' + (data.name || 'World') + '!');
    },
    // a plain return value
    double(data) {
      return data.number * 2;
    },
    // a promise: settled later, on the worker's event loop
    async slow_square(data) {
      await new Promise((resolve) => setTimeout(resolve, data.ms || 10));
      return data.number * data.number;
    },
    // how many calls this worker has served
    count() {
      return ++calls;
    },
    // errors reach the caller with their stack
    fail(data) {
      throw new TypeError(data.message || 'something went wrong');
    },
  },
  timeout: 5000,
  greeting: 'hi', // extras: this.host.config.greeting
};
