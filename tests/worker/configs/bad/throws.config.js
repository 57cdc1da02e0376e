// A config that throws while loading, on line 3.
const x = 1;
throw new Error('config exploded');
