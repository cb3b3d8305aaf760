// Interned subscriptions: thousands of Envoys subscribe to the same names, so
// equal name sets share one object (and one cached view per snapshot) instead
// of costing a Set per stream. Reference-counted; dropped with the last user.
import type { Subscription } from '../cache/index.ts';

interface Interned {
  subscription: Subscription;
  refs: number;
}

export class SubscriptionInterner {
  private readonly table = new Map<string, Interned>();
  static readonly EMPTY: Subscription = { key: '', names: new Set(), sorted: [] };

  intern(names: Iterable<string>): Subscription {
    const sorted = [...new Set(names)].sort();
    if (sorted.length === 0) return SubscriptionInterner.EMPTY;
    const key = sorted.join('\n');
    let entry = this.table.get(key);
    if (!entry) {
      entry = { subscription: { key, names: new Set(sorted), sorted }, refs: 0 };
      this.table.set(key, entry);
    }
    entry.refs++;
    return entry.subscription;
  }

  release(subscription: Subscription): void {
    if (subscription.key === '') return;
    const entry = this.table.get(subscription.key);
    if (entry && --entry.refs <= 0) this.table.delete(subscription.key);
  }

  get size(): number {
    return this.table.size;
  }
}
