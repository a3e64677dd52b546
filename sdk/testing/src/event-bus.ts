import { EventEmitter } from 'node:events';
import type { EventBus } from '@nucleus/sdk';

const ANY = Symbol('any');

/**
 * The bus contract of the SDK in a few lines (listeners per type and for every type, called synchronously), so the
 * plugin's classes are fed events exactly as the kernel delivers them, without booting a kernel (for unit tests of plugin classes).
 */
export function eventBus(): EventBus {
  const emitter = new EventEmitter();
  return {
    on(type, listener) {
      emitter.on(type, listener);
      return () => emitter.off(type, listener);
    },
    onAny(listener) {
      emitter.on(ANY, listener);
      return () => emitter.off(ANY, listener);
    },
    emit(type, payload) {
      emitter.emit(type, payload);
      emitter.emit(ANY, type, payload);
    },
  };
}
