// A widget's model without a kernel: the traits an anywidget view reads (get), sets (set, save_changes) and
// watches (on, off), held in the standalone page itself. The explorers' ES modules run on it unchanged.
function pageModel(values) {
  const handlers = {};
  return {
    get: (key) => values[key],
    set: (key, value) => { values[key] = value; for (const handler of handlers[`change:${key}`] || []) handler(); },
    on: (event, handler) => { (handlers[event] = handlers[event] || []).push(handler); },
    off: (event, handler) => { handlers[event] = (handlers[event] || []).filter((known) => known !== handler); },
    save_changes: () => {},
  };
}
