export function shout(s) {
  return String(s).toUpperCase() + '!';
}
