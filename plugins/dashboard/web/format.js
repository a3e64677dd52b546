// How numbers read on the page.

export function number(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  return Number(value).toLocaleString('en', { maximumFractionDigits: digits });
}

export function ms(value) {
  return value === null || value === undefined ? '–' : `${number(value, value < 10 ? 1 : 0)} ms`;
}

export function bytes(value) {
  if (value === null || value === undefined) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${number(v, 1)} ${units[i]}`;
}

export function time(t) {
  return new Date(t).toLocaleTimeString('en', { hour12: false });
}
