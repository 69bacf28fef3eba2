/**
 * A set of items in the numbered slots of an array, for the collections every connection joins
 * and leaves (the open connections, the shared timers' items). Not a JS Map or Set: under load,
 * JavaScriptCore's Map and Set kept entries deleted since their last rehash reachable, so every
 * young-generation collection kept the last few hundred finished connections (their sockets,
 * closures, records) alive and promoted them, and the old generation filled with dead tunnels
 * until a full collection freed them (measured: a full collection every other collection, and
 * most of each eden collection's heap surviving; bench/RESULTS.md). A cleared slot holds nothing.
 *
 * `add` returns the item's slot; `delete` takes it back together with the item, so that a stale
 * delete (the slot has been reused since) leaves the new item alone.
 */
export class Slots<T> {
  private readonly items: Array<T | undefined> = [];
  /** Cleared slots, reused last-in first-out. */
  private readonly free: number[] = [];
  private live = 0;

  get size(): number {
    return this.live;
  }

  add(item: T): number {
    const slot = this.free.length > 0 ? this.free.pop()! : this.items.length;
    this.items[slot] = item;
    this.live++;
    return slot;
  }

  /** Removes `item` from `slot`; false when the slot holds something else (already removed). */
  delete(slot: number, item: T): boolean {
    if (slot < 0 || this.items[slot] !== item) return false;
    this.items[slot] = undefined;
    this.free.push(slot);
    this.live--;
    if (this.live === 0) {
      // Give back what a burst left behind.
      this.items.length = 0;
      this.free.length = 0;
    }
    return true;
  }

  /**
   * Calls `visit` for each item with its slot. Items may be deleted or added meanwhile: a
   * deleted one is not visited any more, an added one may or may not be.
   */
  forEach(visit: (item: T, slot: number) => void): void {
    const items = this.items;
    for (let slot = 0; slot < items.length; slot++) {
      const item = items[slot];
      if (item !== undefined) visit(item, slot);
    }
  }

  /** The items, as an array (a snapshot), in slot order. */
  toArray(): T[] {
    const out: T[] = [];
    this.forEach((item) => void out.push(item));
    return out;
  }
}
