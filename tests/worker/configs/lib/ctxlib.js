globalThis.ctxlib = (x) => 'ctxlib ' + x;
