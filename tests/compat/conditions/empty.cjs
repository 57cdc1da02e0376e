// What a "browser": false entry resolves to in measure.py's runs.
module.exports = {};
