//! The token trie behind [`Sublist`](super::Sublist): one [`Level`] per subject token,
//! holding a hash map of literal tokens plus dedicated slots for `*` and `>`.
//!
//! Nothing here locks; the owner serialises writers and lets readers share. Nothing
//! here recurses either: subjects come from the network and may have thousands of
//! tokens, so every walk keeps its own explicit stack and [`Level`]'s `Drop` tears
//! deep branches down iteratively.
//!
//! Memory matters at a million subscriptions, and most subjects have exactly one
//! subscriber and short tokens. So a node is 32 bytes, a single subscriber is stored
//! inline ([`SubSet::One`]), tokens of up to 22 bytes live inside the hash table
//! ([`Key`]) rather than in a separate allocation, and queue groups, which most
//! subjects lack, cost one pointer until used.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::subject::{TSEP, Token, tokens};

/// Number of members above which a [`SubSet`] keeps a hash index, so that removing one
/// subscriber of a subject with a million subscribers is not a linear scan.
const INDEX_MIN: usize = 32;

/// The identity of a subscription: the address of its `Arc` allocation.
fn identity<T>(item: &Arc<T>) -> usize {
    Arc::as_ptr(item).cast::<()>() as usize
}

/// An insertion-ordered set of subscriptions compared by `Arc` identity.
///
/// Order matters because delivery order must be deterministic.
pub(crate) enum SubSet<T> {
    /// No members.
    Empty,
    /// Exactly one member: the common case, without a heap allocation of its own.
    One(Arc<T>),
    /// Two members or more.
    Many(Box<ManySet<T>>),
}

/// A [`SubSet`] of two members or more. Small ones are a plain vector; large ones add
/// an identity → slot index and leave holes on removal, compacted once they outnumber
/// the members.
pub(crate) struct ManySet<T> {
    /// Members in insertion order; `None` marks a hole left by a removal (only while
    /// `slots` is present).
    items: Vec<Option<Arc<T>>>,
    /// Identity → slot in `items`, present only for sets that grew past [`INDEX_MIN`].
    slots: Option<FxHashMap<usize, usize>>,
    /// Number of `None` entries in `items`.
    holes: usize,
}

impl<T> ManySet<T> {
    /// Number of members.
    fn len(&self) -> usize {
        self.items.len() - self.holes
    }

    /// Adds `item` at the end unless already present.
    fn insert(&mut self, item: Arc<T>) -> bool {
        let id = identity(&item);
        match &mut self.slots {
            Some(slots) => {
                if slots.contains_key(&id) {
                    return false;
                }
                slots.insert(id, self.items.len());
            }
            None => {
                if self.items.iter().flatten().any(|x| identity(x) == id) {
                    return false;
                }
            }
        }
        self.items.push(Some(item));
        if self.slots.is_none() && self.items.len() > INDEX_MIN {
            self.rebuild_index();
        }
        true
    }

    /// Removes `item` if present.
    fn remove(&mut self, item: &Arc<T>) -> bool {
        let id = identity(item);
        let Some(slots) = &mut self.slots else {
            let pos = self
                .items
                .iter()
                .position(|x| x.as_ref().is_some_and(|x| identity(x) == id));
            return match pos {
                Some(pos) => {
                    self.items.remove(pos);
                    true
                }
                None => false,
            };
        };
        let Some(slot) = slots.remove(&id) else {
            return false;
        };
        if let Some(x) = self.items.get_mut(slot) {
            *x = None;
        }
        self.holes += 1;
        if self.holes * 2 > self.items.len() {
            self.compact();
        }
        true
    }

    /// Squeezes out the holes, dropping the index again once the set is small.
    fn compact(&mut self) {
        self.items.retain(Option::is_some);
        self.holes = 0;
        if self.items.len() <= INDEX_MIN / 2 {
            self.slots = None;
        } else {
            self.rebuild_index();
        }
        if self.items.capacity() > 2 * self.items.len() {
            self.items.shrink_to_fit();
        }
    }

    /// Recreates the index from `items` (which must have no holes).
    fn rebuild_index(&mut self) {
        let mut slots = FxHashMap::default();
        slots.reserve(self.items.len());
        for (slot, item) in self.items.iter().enumerate() {
            if let Some(item) = item {
                slots.insert(identity(item), slot);
            }
        }
        self.slots = Some(slots);
    }
}

impl<T> SubSet<T> {
    /// Number of members.
    pub(crate) fn len(&self) -> usize {
        match self {
            SubSet::Empty => 0,
            SubSet::One(_) => 1,
            SubSet::Many(m) => m.len(),
        }
    }

    /// Whether the set has no members.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, SubSet::Empty)
    }

    /// Members in insertion order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<T>> {
        let (one, many) = match self {
            SubSet::Empty => (None, [].iter()),
            SubSet::One(a) => (Some(a), [].iter()),
            SubSet::Many(m) => (None, m.items.iter()),
        };
        one.into_iter().chain(many.flatten())
    }

    /// Appends clones of the members to `out`.
    pub(crate) fn clone_into(&self, out: &mut Vec<Arc<T>>) {
        match self {
            SubSet::Empty => {}
            SubSet::One(a) => out.push(a.clone()),
            SubSet::Many(m) => out.extend(m.items.iter().flatten().cloned()),
        }
    }

    /// Adds `item` at the end; returns `false` (and keeps the set as it was) if the
    /// same `Arc` is already a member.
    pub(crate) fn insert(&mut self, item: Arc<T>) -> bool {
        match self {
            SubSet::Empty => *self = SubSet::One(item),
            SubSet::One(a) => {
                if Arc::ptr_eq(a, &item) {
                    return false;
                }
                let first = a.clone();
                let set = ManySet {
                    items: vec![Some(first), Some(item)],
                    slots: None,
                    holes: 0,
                };
                *self = SubSet::Many(Box::new(set));
            }
            SubSet::Many(m) => return m.insert(item),
        }
        true
    }

    /// Removes `item`; returns `false` if it was not a member.
    pub(crate) fn remove(&mut self, item: &Arc<T>) -> bool {
        match self {
            SubSet::Empty => false,
            SubSet::One(a) => {
                if !Arc::ptr_eq(a, item) {
                    return false;
                }
                *self = SubSet::Empty;
                true
            }
            SubSet::Many(m) => {
                if !m.remove(item) {
                    return false;
                }
                if m.len() <= 1 {
                    *self = match m.items.iter_mut().find_map(Option::take) {
                        Some(last) => SubSet::One(last),
                        None => SubSet::Empty,
                    };
                }
                true
            }
        }
    }
}

/// The members of one queue group on one subject.
pub(crate) struct QueueGroup<T> {
    /// Queue group name.
    pub(crate) name: Box<[u8]>,
    /// Members in insertion order.
    pub(crate) members: SubSet<T>,
}

/// The queue groups of a [`Node`], boxed behind one thin pointer because most nodes
/// have none.
pub(crate) struct QueueGroups<T>(Vec<QueueGroup<T>>);

/// One subject position: the subscriptions whose subject ends here, and the level
/// holding the next token of longer subjects.
pub(crate) struct Node<T> {
    /// Next level, for subjects with more tokens; `None` rather than an empty level.
    pub(crate) next: Option<Box<Level<T>>>,
    /// Plain subscriptions, in insertion order.
    pub(crate) psubs: SubSet<T>,
    /// Queue groups in the order their first member arrived; `None` rather than empty.
    /// A vector because there are rarely more than a handful, and match results are
    /// built by walking it.
    qsubs: Option<Box<QueueGroups<T>>>,
}

impl<T> Node<T> {
    /// An empty node.
    fn new() -> Self {
        Node {
            next: None,
            psubs: SubSet::Empty,
            qsubs: None,
        }
    }

    /// Whether any subscription ends at this node.
    pub(crate) fn has_subs(&self) -> bool {
        !self.psubs.is_empty() || self.qsubs.is_some()
    }

    /// The queue groups (never empty ones).
    pub(crate) fn groups(&self) -> &[QueueGroup<T>] {
        self.qsubs.as_deref().map_or(&[], |g| g.0.as_slice())
    }

    /// Adds a queue subscription; `false` if already present.
    fn insert_queued(&mut self, queue: &[u8], item: Arc<T>) -> bool {
        let groups = &mut self
            .qsubs
            .get_or_insert_with(|| Box::new(QueueGroups(Vec::new())))
            .0;
        match groups.iter_mut().find(|g| *g.name == *queue) {
            Some(group) => group.members.insert(item),
            None => {
                groups.push(QueueGroup {
                    name: Box::from(queue),
                    members: SubSet::One(item),
                });
                true
            }
        }
    }

    /// Removes a queue subscription, and its group if that empties; `false` if absent.
    fn remove_queued(&mut self, queue: &[u8], item: &Arc<T>) -> bool {
        let Some(QueueGroups(groups)) = self.qsubs.as_deref_mut() else {
            return false;
        };
        let Some(i) = groups.iter().position(|g| *g.name == *queue) else {
            return false;
        };
        let Some(group) = groups.get_mut(i) else {
            return false;
        };
        if !group.members.remove(item) {
            return false;
        }
        if group.members.is_empty() {
            groups.remove(i);
            if groups.is_empty() {
                self.qsubs = None;
            }
        }
        true
    }
}

/// A literal token as a hash map key: stored inline up to 22 bytes (nearly every
/// token), on the heap beyond. Hashes and compares exactly like the `[u8]` it holds,
/// so maps keyed by it are searched with plain `&[u8]`.
pub(crate) enum Key {
    /// A short token.
    Inline {
        /// Number of bytes used in `buf`.
        len: u8,
        /// The token, then padding.
        buf: [u8; Key::INLINE],
    },
    /// A long token.
    Heap(Box<[u8]>),
}

impl Key {
    /// Longest token stored inline (keeps `Key` at 24 bytes).
    const INLINE: usize = 22;

    /// The token bytes.
    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Key::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for Key {
    fn from(t: &[u8]) -> Self {
        let mut buf = [0u8; Key::INLINE];
        match (buf.get_mut(..t.len()), u8::try_from(t.len())) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(t);
                Key::Inline { len, buf }
            }
            _ => Key::Heap(Box::from(t)),
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must equal `<[u8] as Hash>::hash` for `Borrow<[u8]>` lookups to work.
        self.as_bytes().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

/// All the nodes for one token position under a common prefix.
pub(crate) struct Level<T> {
    /// Literal tokens.
    pub(crate) nodes: FxHashMap<Key, Node<T>>,
    /// The `*` node.
    pub(crate) pwc: Option<Box<Node<T>>>,
    /// The `>` node (never has a `next`: `>` is always last).
    pub(crate) fwc: Option<Box<Node<T>>>,
}

impl<T> Level<T> {
    /// An empty level.
    fn new() -> Self {
        Level {
            nodes: FxHashMap::default(),
            pwc: None,
            fwc: None,
        }
    }

    /// Number of child nodes.
    fn num_nodes(&self) -> usize {
        self.nodes.len() + usize::from(self.pwc.is_some()) + usize::from(self.fwc.is_some())
    }

    /// Mutable access to the node for a subscription token, if any.
    fn child_mut(&mut self, tok: Token<'_>) -> Option<&mut Node<T>> {
        match tok {
            Token::Literal(t) => self.nodes.get_mut(t),
            Token::Pwc => self.pwc.as_deref_mut(),
            Token::Fwc => self.fwc.as_deref_mut(),
        }
    }

    /// The node for a subscription token, created if missing (`created` is bumped).
    /// `None` cannot happen (the key was just inserted); it is reported rather than
    /// unwrapped so that no code path here can panic.
    fn child_or_insert(&mut self, tok: Token<'_>, created: &mut usize) -> Option<&mut Node<T>> {
        match tok {
            Token::Literal(t) => {
                if !self.nodes.contains_key(t) {
                    self.nodes.insert(Key::from(t), Node::new());
                    *created += 1;
                }
                self.nodes.get_mut(t)
            }
            Token::Pwc => Some(self.pwc.get_or_insert_with(|| {
                *created += 1;
                Box::new(Node::new())
            })),
            Token::Fwc => Some(self.fwc.get_or_insert_with(|| {
                *created += 1;
                Box::new(Node::new())
            })),
        }
    }

    /// Drops the node for a subscription token (and everything below it).
    fn remove_child(&mut self, tok: Token<'_>) {
        match tok {
            Token::Literal(t) => {
                self.nodes.remove(t);
            }
            Token::Pwc => self.pwc = None,
            Token::Fwc => self.fwc = None,
        }
    }

    /// Moves every child's `next` level into `out` so that dropping this level does not
    /// recurse into them.
    fn detach_children(&mut self, out: &mut Vec<Level<T>>) {
        let nodes = self
            .nodes
            .values_mut()
            .chain(self.pwc.as_deref_mut())
            .chain(self.fwc.as_deref_mut());
        out.extend(nodes.filter_map(|n| n.next.take()).map(|b| *b));
    }
}

impl<T> Drop for Level<T> {
    fn drop(&mut self) {
        // Dropping nested boxes would recurse once per token; a subject with thousands
        // of tokens could then overflow the stack. Flatten instead: every level popped
        // here has already had its children detached when it is dropped.
        let mut pending = Vec::new();
        self.detach_children(&mut pending);
        while let Some(mut level) = pending.pop() {
            level.detach_children(&mut pending);
        }
    }
}

/// A continuation of the match walk (see [`Trie::walk_matches`]).
struct Resume<'a, T> {
    /// Level whose `*` subtree was just explored.
    level: &'a Level<T>,
    /// Index of the token that `level` is matched against.
    token: usize,
}

/// What the trie returns from a [`Trie::insert`] or [`Trie::remove`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The trie changed.
    Done,
    /// Insert: the same `Arc` is already subscribed with this subject and queue.
    /// Remove: no such subscription.
    Unchanged,
}

/// The subscription trie plus its bookkeeping.
pub(crate) struct Trie<T> {
    /// Level of the first token.
    root: Level<T>,
    /// Number of nodes, for the leak checks of tests and benchmarks.
    nodes: usize,
    /// Number of subscriptions.
    subs: usize,
}

impl<T> Trie<T> {
    /// An empty trie.
    pub(crate) fn new() -> Self {
        Trie {
            root: Level::new(),
            nodes: 0,
            subs: 0,
        }
    }

    /// Number of nodes.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes
    }

    /// Number of subscriptions.
    pub(crate) fn len(&self) -> usize {
        self.subs
    }

    /// Adds a subscription. `subject` must be valid (the caller checks).
    pub(crate) fn insert(&mut self, subject: &[u8], queue: Option<&[u8]>, item: Arc<T>) -> Change {
        let mut created = 0;
        let mut level = &mut self.root;
        let mut toks = tokens(subject);
        let mut tok = toks.next().unwrap_or_default();
        let node = loop {
            let Some(node) = level.child_or_insert(Token::of(tok), &mut created) else {
                return Change::Unchanged;
            };
            match toks.next() {
                None => break node,
                Some(t) => {
                    tok = t;
                    level = node.next.get_or_insert_with(|| Box::new(Level::new()));
                }
            }
        };
        self.nodes += created;
        let added = match queue {
            None => node.psubs.insert(item),
            Some(q) => node.insert_queued(q, item),
        };
        if added {
            self.subs += 1;
            Change::Done
        } else {
            // A duplicate implies the path already existed, so `created` is 0.
            Change::Unchanged
        }
    }

    /// Removes a subscription and prunes nodes left without subscriptions or children.
    pub(crate) fn remove(&mut self, subject: &[u8], queue: Option<&[u8]>, item: &Arc<T>) -> Change {
        // Walk down once, noting the shallowest depth from which every node on the
        // path would be left with nothing but the path itself: if the leaf empties,
        // everything from there down goes.
        let mut prune_from = 0;
        let mut depth = 0;
        let mut level = &mut self.root;
        let mut toks = tokens(subject).peekable();
        let leaf = loop {
            let Some(tok) = toks.next() else {
                return Change::Unchanged;
            };
            let Some(node) = level.child_mut(Token::of(tok)) else {
                return Change::Unchanged;
            };
            if toks.peek().is_none() {
                break node;
            }
            if node.has_subs() || node.next.as_ref().is_some_and(|n| n.num_nodes() > 1) {
                prune_from = depth + 1;
            }
            let Some(next) = node.next.as_deref_mut() else {
                return Change::Unchanged;
            };
            depth += 1;
            level = next;
        };
        let removed = match queue {
            None => leaf.psubs.remove(item),
            Some(q) => leaf.remove_queued(q, item),
        };
        if !removed {
            return Change::Unchanged;
        }
        self.subs -= 1;
        if !leaf.has_subs() && leaf.next.is_none() {
            self.prune(subject, prune_from);
            self.nodes -= depth - prune_from + 1;
        }
        Change::Done
    }

    /// Drops the node at depth `at` on `subject`'s path (with the chain below it), and
    /// its parent's `next` level if that becomes empty.
    fn prune(&mut self, subject: &[u8], at: usize) {
        let mut toks = tokens(subject).map(Token::of);
        if at == 0 {
            if let Some(tok) = toks.next() {
                self.root.remove_child(tok);
            }
            return;
        }
        let mut level = &mut self.root;
        for _ in 0..at - 1 {
            let next = toks
                .next()
                .and_then(|t| level.child_mut(t))
                .and_then(|n| n.next.as_deref_mut());
            let Some(next) = next else { return };
            level = next;
        }
        let Some(parent) = toks.next().and_then(|t| level.child_mut(t)) else {
            return;
        };
        let (Some(tok), Some(next)) = (toks.next(), parent.next.as_deref_mut()) else {
            return;
        };
        next.remove_child(tok);
        if next.num_nodes() == 0 {
            parent.next = None;
        }
    }

    /// Visits the nodes matching the literal subject `toks`, in nats-server's order,
    /// until `visit` returns `true`. Returns whether it did.
    ///
    /// The order: at each level the `>` node, then everything under the `*` node, then
    /// the literal node; at the last token the `>` node, the literal node, the `*` node.
    /// So for subs `a.*.c`, `a.>`, `>` and subject `a.b.c`: `>`, `a.>`, `a.*.c`.
    pub(crate) fn walk_matches<'a>(
        &'a self,
        toks: &[&[u8]],
        mut visit: impl FnMut(&'a Node<T>) -> bool,
    ) -> bool {
        let Some(last) = toks.len().checked_sub(1) else {
            return false;
        };
        // A `*` subtree is explored before the literal branch of the same level; this
        // stack remembers the literal branches still to take (one per `*` on the path).
        let mut resume: Vec<Resume<'a, T>> = Vec::new();
        let mut start = Some((&self.root, 0usize));
        loop {
            let (mut level, mut i) = match start.take() {
                Some(s) => s,
                None => {
                    let Some(r) = resume.pop() else {
                        return false;
                    };
                    let next = toks
                        .get(r.token)
                        .and_then(|t| r.level.nodes.get(*t))
                        .and_then(|n| n.next.as_deref());
                    match next {
                        Some(next) => (next, r.token + 1),
                        None => continue,
                    }
                }
            };
            loop {
                if let Some(f) = level.fwc.as_deref()
                    && visit(f)
                {
                    return true;
                }
                let Some(tok) = toks.get(i) else { break };
                let literal = level.nodes.get(*tok);
                if i == last {
                    if let Some(n) = literal
                        && visit(n)
                    {
                        return true;
                    }
                    if let Some(p) = level.pwc.as_deref()
                        && visit(p)
                    {
                        return true;
                    }
                    break;
                }
                if let Some(below) = level.pwc.as_deref().and_then(|p| p.next.as_deref()) {
                    resume.push(Resume { level, token: i });
                    start = Some((below, i + 1));
                    break;
                }
                match literal.and_then(|n| n.next.as_deref()) {
                    Some(next) => {
                        level = next;
                        i += 1;
                    }
                    None => break,
                }
            }
        }
    }

    /// Visits every node whose subject could match a literal subject that `pattern` also
    /// matches (some may have no subscriptions of their own). `pattern` must be valid;
    /// order is unspecified.
    pub(crate) fn walk_colliding<'a>(
        &'a self,
        pattern: &[&[u8]],
        mut visit: impl FnMut(&'a Node<T>),
    ) {
        let Some(last) = pattern.len().checked_sub(1) else {
            return;
        };
        // (level, index of the pattern token it is compared with); usize::MAX means
        // "everything below": the pattern had `>` here.
        let mut stack: Vec<(&'a Level<T>, usize)> = vec![(&self.root, 0)];
        while let Some((level, i)) = stack.pop() {
            let all_nodes = || {
                level
                    .nodes
                    .values()
                    .chain(level.pwc.as_deref())
                    .chain(level.fwc.as_deref())
            };
            let tok = if i == usize::MAX {
                Token::Fwc
            } else {
                pattern.get(i).map_or(Token::Fwc, |t| Token::of(t))
            };
            if tok == Token::Fwc {
                for n in all_nodes() {
                    visit(n);
                    if let Some(next) = n.next.as_deref() {
                        stack.push((next, usize::MAX));
                    }
                }
                continue;
            }
            // A subscription ending in `>` here covers whatever the pattern has left.
            if let Some(f) = level.fwc.as_deref() {
                visit(f);
            }
            let mut descend = |n: &'a Node<T>| {
                if i == last {
                    visit(n);
                } else if let Some(next) = n.next.as_deref() {
                    stack.push((next, i + 1));
                }
            };
            if let Token::Literal(t) = tok {
                if let Some(n) = level.nodes.get(t) {
                    descend(n);
                }
            } else {
                level.nodes.values().for_each(&mut descend);
            }
            if let Some(p) = level.pwc.as_deref() {
                descend(p);
            }
        }
    }

    /// Calls `f(subject, node)` for every node that has subscriptions.
    pub(crate) fn for_each_node(&self, mut f: impl FnMut(&[u8], &Node<T>)) {
        // Depth-first with one shared subject buffer: an entry remembers how long its
        // parent's subject was, and LIFO order guarantees the buffer still starts with
        // that parent subject when the entry is popped.
        let mut subject: Vec<u8> = Vec::new();
        let mut stack: Vec<(usize, &[u8], &Node<T>)> = Vec::new();
        Self::push_children(&mut stack, &self.root, 0);
        while let Some((parent_len, tok, node)) = stack.pop() {
            subject.truncate(parent_len);
            if parent_len > 0 {
                subject.push(TSEP);
            }
            subject.extend_from_slice(tok);
            if node.has_subs() {
                f(&subject, node);
            }
            if let Some(next) = node.next.as_deref() {
                Self::push_children(&mut stack, next, subject.len());
            }
        }
    }

    /// Pushes the children of `level` for [`Trie::for_each_node`].
    fn push_children<'a>(
        stack: &mut Vec<(usize, &'a [u8], &'a Node<T>)>,
        level: &'a Level<T>,
        len: usize,
    ) {
        stack.extend(level.nodes.iter().map(|(k, n)| (len, k.as_bytes(), n)));
        if let Some(p) = level.pwc.as_deref() {
            stack.push((len, b"*", p));
        }
        if let Some(f) = level.fwc.as_deref() {
            stack.push((len, b">", f));
        }
    }

    /// Recounts nodes and subscriptions by walking the whole trie and checks the shape
    /// invariants (no empty node, no empty level). Test support.
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut nodes = 0;
        let mut subs = 0;
        let mut stack: Vec<(&Level<T>, bool)> = vec![(&self.root, true)];
        while let Some((level, is_root)) = stack.pop() {
            if !is_root && level.num_nodes() == 0 {
                return Err("empty non-root level".into());
            }
            if level.fwc.as_ref().is_some_and(|f| f.next.is_some()) {
                return Err("`>` node with a next level".into());
            }
            for n in level
                .nodes
                .values()
                .chain(level.pwc.as_deref())
                .chain(level.fwc.as_deref())
            {
                nodes += 1;
                subs += n.psubs.len() + n.groups().iter().map(|g| g.members.len()).sum::<usize>();
                if n.qsubs.as_ref().is_some_and(|g| g.0.is_empty())
                    || n.groups().iter().any(|g| g.members.is_empty())
                {
                    return Err("empty queue group".into());
                }
                if !n.has_subs() && n.next.is_none() {
                    return Err("node with neither subscriptions nor children".into());
                }
                if let Some(next) = n.next.as_deref() {
                    stack.push((next, false));
                }
            }
        }
        if nodes != self.nodes {
            return Err(format!("node counter {} but {} nodes", self.nodes, nodes));
        }
        if subs != self.subs {
            return Err(format!("sub counter {} but {} subs", self.subs, subs));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_keeps_order_through_index_and_compaction() {
        let items: Vec<Arc<usize>> = (0..200).map(Arc::new).collect();
        let mut set = SubSet::Empty;
        for it in &items {
            assert!(set.insert(it.clone()));
        }
        assert!(!set.insert(items[150].clone()), "duplicate accepted");
        assert!(matches!(&set, SubSet::Many(m) if m.slots.is_some()));
        // Remove all odd members: forces at least one compaction.
        for it in items.iter().filter(|x| ***x % 2 == 1) {
            assert!(set.remove(it));
            assert!(!set.remove(it));
        }
        let left: Vec<usize> = set.iter().map(|x| **x).collect();
        assert_eq!(left, (0..200).filter(|x| x % 2 == 0).collect::<Vec<_>>());
        // Shrink until the index is dropped, order still intact.
        for it in items.iter().filter(|x| ***x % 2 == 0 && ***x >= 20) {
            assert!(set.remove(it));
        }
        assert!(matches!(&set, SubSet::Many(m) if m.slots.is_none()));
        let left: Vec<usize> = set.iter().map(|x| **x).collect();
        assert_eq!(left, vec![0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
        assert!(set.insert(items[1].clone()));
        assert_eq!(set.iter().last().map(|x| **x), Some(1));
        assert_eq!(set.len(), 11);
        // Down to one member: stored inline again; then empty.
        for it in items
            .iter()
            .filter(|x| (***x <= 18 && ***x % 2 == 0 && ***x != 6) || ***x == 1)
        {
            assert!(set.remove(it), "{it}");
        }
        assert!(matches!(&set, SubSet::One(a) if **a == 6));
        assert!(!set.remove(&items[7]));
        assert!(set.remove(&items[6]));
        assert!(set.is_empty());
        assert_eq!(set.iter().count(), 0);
    }

    #[test]
    fn keys_hash_and_compare_like_byte_slices() {
        use std::hash::BuildHasher;
        let build = rustc_hash::FxBuildHasher;
        for t in [
            &b""[..],
            b"a",
            b"0123456789012345678901",
            b"01234567890123456789012",
            &[0xff; 300],
        ] {
            let k = Key::from(t);
            assert_eq!(k.as_bytes(), t);
            assert_eq!(matches!(k, Key::Inline { .. }), t.len() <= Key::INLINE);
            assert_eq!(build.hash_one(&k), build.hash_one(t));
        }
        let mut m: FxHashMap<Key, u8> = FxHashMap::default();
        m.insert(Key::from(&b"short"[..]), 1);
        m.insert(Key::from(&[b'x'; 40][..]), 2);
        assert_eq!(m.get(&b"short"[..]), Some(&1));
        assert_eq!(m.get(&[b'x'; 40][..]), Some(&2));
        assert_eq!(m.get(&b"shor"[..]), None);
        assert_eq!(std::mem::size_of::<Key>(), 24);
        assert_eq!(std::mem::size_of::<Node<u8>>(), 32);
    }

    #[test]
    fn deep_subjects_do_not_overflow_the_stack() {
        // 100k tokens: recursion of any kind (walks or Drop) would blow a 2 MiB stack.
        let subject = vec!["*"; 100_000].join(".");
        let literal = vec!["x"; 100_000].join(".");
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut trie = Trie::new();
                let a = Arc::new(1u8);
                assert_eq!(
                    trie.insert(subject.as_bytes(), None, a.clone()),
                    Change::Done
                );
                assert_eq!(
                    trie.insert(literal.as_bytes(), None, a.clone()),
                    Change::Done
                );
                let toks: Vec<&[u8]> = tokens(literal.as_bytes()).collect();
                let mut seen = 0;
                trie.walk_matches(&toks, |_| {
                    seen += 1;
                    false
                });
                assert_eq!(seen, 2);
                let mut listed = 0;
                trie.for_each_node(|s, _| {
                    listed += 1;
                    assert!(s == subject.as_bytes() || s == literal.as_bytes());
                });
                assert_eq!(listed, 2);
                assert_eq!(trie.remove(literal.as_bytes(), None, &a), Change::Done);
                assert_eq!(trie.node_count(), 100_000);
                trie.check().unwrap();
                drop(trie);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
