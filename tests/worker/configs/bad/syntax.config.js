// A config with a syntax error on line 3.
module.exports = {
  functions: { oops( { } },
};
