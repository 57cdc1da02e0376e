exports.shout = (s) => String(s).toUpperCase() + '!';
