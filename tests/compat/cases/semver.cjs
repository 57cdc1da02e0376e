// semver (CommonJS): ranges, comparisons, increments, coercion.
const semver = require('semver');

module.exports = {
  functions: {
    check(data) {
      return {
        satisfies: data.versions.map((v) => semver.satisfies(v, data.range)),
        max: semver.maxSatisfying(data.versions, data.range),
        sorted: semver.rsort(data.versions.slice()),
        inc: semver.inc(data.versions[0], 'prerelease', 'beta'),
        coerce: String(semver.coerce('v2.3 is here')),
        valid: semver.valid('1.2'),
        diff: semver.diff('1.2.3', '1.3.0'),
      };
    },
  },
  compat: {
    package: 'semver',
    calls: [['check', { range: '^1.2.0 || >=3.0.0-rc.1 <3.1.0', versions: ['1.2.3', '1.9.0', '2.0.0', '3.0.0-rc.2', '3.0.1'] }]],
  },
};
