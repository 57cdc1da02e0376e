// A config whose export is not an object.
module.exports = 42;
