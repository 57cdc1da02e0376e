globalThis.ctxlib2 = (x) => ctxlib(x) + ' and ctxlib2';
