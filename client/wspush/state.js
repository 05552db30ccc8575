// Per-topic state of the wspush client: the resume position (TopicState)
// and the Subscription handle; and the Client's event listeners (Emitter).
// Owned by one Client; not shared.

/**
 * The per-topic resume state: the epoch and the last seq handed to the
 * handler. accept() decides what to do with a msg's seq.
 */
export class TopicState {
  constructor() {
    /** @type {string} */ this.epoch = "";
    /** @type {number} */ this.seq = 0;
    /** @type {boolean} */ this.known = false; // epoch and seq are meaningful
  }

  /**
   * The sub fields that resume this topic, or {} on the first subscribe.
   * @returns {{since?: number, epoch?: string}}
   */
  resume() {
    return this.known ? { since: this.seq, epoch: this.epoch } : {};
  }

  /**
   * Takes a subscribed frame. Returns {gone, resumed, replayed, from}:
   * gone when history this client had a position in was lost.
   * @param {{seq: number, epoch: string, history_gone?: boolean}} m
   * @param {boolean} [latest] latest mode
   */
  subscribed(m, latest) {
    const from = { epoch: this.epoch, seq: this.seq };
    const wasKnown = this.known;
    this.known = true;
    if (m.history_gone || !wasKnown) {
      this.epoch = m.epoch;
      // A stream goes on live after seq; latest mode's next tick carries
      // the current value, whatever its seq.
      this.seq = latest ? 0 : m.seq;
      return { gone: !!m.history_gone, resumed: false, replayed: 0, from };
    }
    if (m.epoch !== this.epoch) {
      // An epoch notice without loss (clusters): take the new epoch.
      this.epoch = m.epoch;
      this.seq = Math.min(this.seq, m.seq);
      return { gone: false, resumed: false, replayed: 0, from };
    }
    return { gone: false, resumed: true, replayed: Math.max(0, m.seq - this.seq), from };
  }

  /**
   * Classifies a msg (stream mode) or a tick value (latest mode) with this
   * seq: "dup" (seq ≤ last: drop), "next" (deliver) or "gap" (a jump with
   * no history_gone: a protocol error; deliver it too). latest mode skips
   * values by design, so gaps are "next" there.
   * @param {number} seq
   * @param {boolean} latest
   * @returns {"dup"|"next"|"gap"}
   */
  accept(seq, latest) {
    if (seq <= this.seq) return "dup";
    const gap = !latest && seq !== this.seq + 1;
    this.seq = seq;
    return gap ? "gap" : "next";
  }
}

/**
 * A subscription returned by Client.subscribe.
 */
export class Subscription {
  constructor(client, topic, mode, handler) {
    this.topic = topic;
    this.mode = mode;
    this._client = client;
    this._handler = handler;
    this._state = new TopicState();
    this._active = true; // false after unsubscribe() or a refusal
    this._id = ""; // id of the sub in flight on the current connection
  }

  /** The last seq delivered and its epoch. */
  get position() {
    return { seq: this._state.seq, epoch: this._state.epoch };
  }

  /** Ends the subscription; no handler call follows. */
  unsubscribe() {
    if (!this._active) return;
    this._active = false;
    this._client._unsubscribe(this);
  }
}

/**
 * Event listeners: on() and _emit(). A listener that throws becomes an
 * "error" event (one that throws on "error" is ignored).
 */
export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */ this._listeners = new Map();
  }

  /**
   * Adds a listener; returns a function that removes it.
   * @param {string} event
   * @param {Function} fn
   */
  on(event, fn) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  _emit(event, arg) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of set) {
      try {
        fn(arg);
      } catch (err) {
        if (event !== "error") this._emit("error", { code: "listener", reason: String(err), error: err });
      }
    }
  }
}
