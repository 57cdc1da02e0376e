// A config without functions.
module.exports = { timeout: 100 };
