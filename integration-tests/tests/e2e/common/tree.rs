//! The example tree's namespaces and members, shared by every test in this one process that
//! serves it. A test that changes them (creates or deletes namespaces in its views, or reloads the
//! tree so that a reconciler rewrites members' RoleBindings or links' copies) holds [`changing`];
//! every other test that serves the example tree holds [`reading`], because its assertions
//! (exact namespace lists and counts, `-A` over a view, quota, members' access) assume the tree
//! as declared. `Canopy::start_with` refuses to serve the example tree without either.

use std::cell::Cell;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static TREE: RwLock<()> = RwLock::new(());

thread_local! {
    /// Whether this test's thread holds a guard, so a forgotten one fails at once, not as a race.
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// Held for a whole test that relies on the example tree's namespaces and members as declared.
pub fn reading() -> Held<RwLockReadGuard<'static, ()>> {
    // A test that failed while holding the lock has already undone what it could in its drops.
    Held::new(TREE.read().unwrap_or_else(|e| e.into_inner()))
}

/// Held for a whole test that changes the example tree's namespaces or members.
pub fn changing() -> Held<RwLockWriteGuard<'static, ()>> {
    Held::new(TREE.write().unwrap_or_else(|e| e.into_inner()))
}

/// A guard of the tree lock, marking its thread as holding it.
pub struct Held<G> {
    _guard: G,
}

impl<G> Held<G> {
    fn new(guard: G) -> Self {
        HELD.with(|held| held.set(true));
        Held { _guard: guard }
    }
}

impl<G> Drop for Held<G> {
    fn drop(&mut self) {
        HELD.with(|held| held.set(false));
    }
}

/// Panics unless this thread holds [`reading`] or [`changing`].
pub fn assert_held() {
    assert!(
        HELD.with(Cell::get),
        "a test serving the example tree must hold common::tree::reading() or changing() for its whole run"
    );
}
