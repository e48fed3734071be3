//! Exact path-dependent TreeSHAP over a flattened copy of a hessboost
//! forest: the per-feature contributions behind `cdp score`'s top reasons.
//!
//! # The algorithm
//!
//! Lundberg, Erion & Lee (2018), "Consistent individualized feature
//! attribution for tree ensembles", Algorithm 2. A tree's value of a
//! feature subset `S` is the path-dependent conditional expectation: walk
//! the tree, following the row's branch at splits on features in `S` and
//! averaging both branches by their training cover (hessian sum) at the
//! others. The Shapley values of that game are found in one walk of every
//! node of the tree, carrying the *unique path* of distinct features split
//! on above the node. Each path element holds its feature, the fraction of
//! cover the path keeps when the feature is unknown (`zero`), whether the
//! row itself follows the path (`one`, 0 or 1), and a weight per subset size
//! of the permutations reaching the node:
//!
//! * EXTEND appends a feature, moving the weights one subset size up
//!   (known) or keeping them (unknown): O(D);
//! * a feature split on again further down is first UNWOUND (its element
//!   removed, the weights restored) and re-extended with both fractions
//!   multiplied in, so every feature is one player: O(D);
//! * at a leaf, each path feature gets `(one − zero) · value` times the
//!   weight sum of the path with that feature unwound: O(D) per feature, so
//!   O(D²) per leaf and O(T·L·D²) per row.
//!
//! Summed over features, the contributions of a tree are its value for the
//! row minus its expected value (the cover-weighted mean of its leaves), so
//! with the bias `base_score + Σ E[tree]` (margin space) a row's
//! contributions sum to its margin.
//!
//! # Rows in lockstep
//!
//! A path element's feature and `zero` depend on the tree path alone (the
//! walk enters both children of every split); only `one` and the weights
//! are the row's. So [`LANES`] rows walk each tree together: one traversal,
//! one copy of the shared fields, and every EXTEND, UNWIND and leaf step a
//! loop over the rows that the compiler turns into SIMD. Each row's
//! arithmetic is exactly what it is alone ([`Forest::explain_row`] gives
//! the same bits). Path arithmetic is `f32` like XGBoost's CPU TreeSHAP;
//! each leaf's shares are summed into the contributions in `f64`, and the
//! bias in `f64`, so rounding stays near `f32`'s of one tree, not of the
//! forest.
//!
//! # Why it is written here
//!
//! hessboost's `BoostedModel::predict_contribs` (a port of XGBoost 3.4's
//! QuadratureTreeSHAP) was measured at 4.5 ms per row for a 40-tree,
//! depth-6, 85-feature model in cdp's dev and test builds, whatever the
//! batch: it is generic (`impl Into<Iterations>`), so its walk is compiled
//! at cdp's opt-level, not hessboost's `opt-level = 3`. In a release build
//! it explains about 10,000 rows per second per core of that model, and
//! 2,400 with 200 trees. This module builds its layout once per model
//! ([`Forest::new`]), allocates nothing per row, and explains about 23,000
//! and 4,600 rows per second per core of the same models in a release
//! build (a single row takes about 0.2 ms of 40 trees with either); and
//! Algorithm 2 is exact at any depth, where the eight-point rule is exact
//! only up to seven distinct features on a path.
//!
//! # Layout and semantics
//!
//! Every tree's nodes are laid out in one array, in pre-order (a split's
//! left child follows it), each node 28 bytes: split feature, threshold,
//! both child indices, the default direction of a missing value, its cover
//! (hessian sum) as a fraction of its parent's (what the walk multiplies
//! in, so no row divides covers), and for a leaf its value times the
//! tree's weight. Routing is XGBoost's and hessboost's: a present value
//! goes left when `x < threshold`, a missing one (`NaN`) follows the
//! default direction. Leaf values already include the learning rate
//! (hessboost and XGBoost store them so); the tree weight is `1` except for
//! dart. A coverless split (cover 0) sends half its weight each way, and a
//! child fraction is floored at `1e-12`, as hessboost and XGBoost do, so a
//! zero-cover branch stays reachable and UNWIND never divides by zero.
//!
//! Refused with [`Error::Explain`]: categorical splits, linear or vector
//! leaves, models with more than one output, gblinear models, trees deeper
//! than [`MAX_DEPTH`]. Margins are not predicted here: hessboost's
//! prediction is already a compact branch-free layout (see
//! [`super::gbdt`]).

use std::fmt;

use hessboost::model::BoostedModel;
use hessboost::tree::RegTree;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// The deepest tree [`Forest::new`] accepts. A walk's path buffer holds
/// `(D + 2)(D + 3) / 2` elements for depth `D` (16 bytes each for one row:
/// 8.4 MB at this depth, per worker), and the walk recurses `D + 1` levels.
pub const MAX_DEPTH: usize = 1024;

/// The deepest forest [`Forest::contributions`] walks [`LANES`] rows at a
/// time (a path element of a block is 264 bytes: about 580 kB of path buffer
/// at this depth); deeper ones are walked a row at a time.
pub const LOCKSTEP_MAX_DEPTH: usize = 64;

/// `feature` of a leaf.
const LEAF: u32 = u32::MAX;
/// `feature` of the first element of every unique path (no feature).
const NO_FEATURE: u32 = u32::MAX;
/// Least fraction of its parent's cover a child is walked with (as
/// hessboost's and XGBoost's TreeSHAP).
const MIN_FRACTION: f32 = 1e-12;
/// Rows walked through the trees together by [`Forest::contributions`].
pub const LANES: usize = 32;
/// Rows a worker explains per task of [`Forest::contributions`] (whole
/// blocks of [`LANES`]).
pub const CHUNK_ROWS: usize = 128;

/// One node of the flattened forest.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// Split feature, or [`LEAF`].
    feature: u32,
    /// A present value goes left when `x < threshold`.
    threshold: f32,
    /// Left child (index into [`Forest::nodes`]); unused for a leaf.
    left: u32,
    /// Right child; unused for a leaf.
    right: u32,
    /// Whether a missing value (`NaN`) goes left.
    default_left: bool,
    /// The node's cover (hessian sum of the training rows reaching it) as
    /// a share of its parent's (floored at [`MIN_FRACTION`], `0.5` under a
    /// coverless parent, `1` for a root): the probability of reaching it
    /// from its parent when the split feature is unknown.
    fraction: f32,
    /// Leaf value times the tree's weight (`0` for a split).
    value: f32,
}

/// A hessboost forest flattened for TreeSHAP: built once per model with
/// [`Forest::new`], then shared by every thread explaining rows.
#[derive(Clone)]
pub struct Forest {
    nodes: Vec<Node>,
    /// Root index of every tree, in the model's order.
    roots: Vec<u32>,
    n_features: usize,
    /// Deepest tree (edges from root to leaf).
    max_depth: usize,
    /// `base_score` (margin space) plus every tree's weighted expected value.
    bias: f64,
    /// `recip[k] = 1 / k` for `k` up to `max_depth + 2` (`recip[0]` unused),
    /// so the path updates multiply rather than divide.
    recip: Vec<Real>,
}

impl fmt::Debug for Forest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forest")
            .field("trees", &self.roots.len())
            .field("nodes", &self.nodes.len())
            .field("n_features", &self.n_features)
            .field("max_depth", &self.max_depth)
            .field("bias", &self.bias)
            .finish()
    }
}

/// The float of the path arithmetic: `f32`, as XGBoost's CPU TreeSHAP
/// (four rows per SSE instruction); each leaf's shares are summed into
/// the contributions in `f64`.
type Real = f32;

/// One element of the unique path of `R` rows walked together. The
/// feature and its zero fraction depend on the tree path alone, so the
/// rows share them; whether the row follows the path and the weights are
/// each row's.
#[derive(Debug, Clone, Copy)]
struct PathElement<const R: usize> {
    /// The feature, or [`NO_FEATURE`] for the path's first element.
    feature: u32,
    /// Fraction of the cover the path keeps when the feature is unknown.
    zero: Real,
    /// Per row, whether it follows the path (`1`) or not (`0`): a row takes
    /// one branch of every split, so it is never anything else.
    one: [Real; R],
    /// Per row, the weight of the subsets of this element's size.
    weight: [Real; R],
}

impl<const R: usize> PathElement<R> {
    const EMPTY: Self = PathElement {
        feature: NO_FEATURE,
        zero: 0.0,
        one: [0.0; R],
        weight: [0.0; R],
    };
}

/// The buffers of a walk of `R` rows: sized on first use for a forest,
/// then reused.
#[derive(Debug, Clone)]
struct Buffers<const R: usize> {
    /// Every level's unique path, one segment per level of the walk.
    path: Vec<PathElement<R>>,
    /// Per feature, each row's contribution, accumulated in `f64`.
    phi: Vec<[f64; R]>,
}

impl<const R: usize> Buffers<R> {
    fn new() -> Self {
        Buffers {
            path: Vec::new(),
            phi: Vec::new(),
        }
    }

    /// Grow the buffers to what `forest` needs (a no-op once they are).
    fn fit(&mut self, forest: &Forest) {
        let d = forest.max_depth;
        let path = (d + 2) * (d + 3) / 2;
        if self.path.len() < path {
            self.path.resize(path, PathElement::EMPTY);
        }
        if self.phi.len() != forest.n_features {
            self.phi.resize(forest.n_features, [0.0; R]);
        }
    }
}

/// Per-worker buffers of [`Forest::explain_row`]: sized on first use for
/// a forest, then reused, so explaining a row allocates nothing.
#[derive(Debug, Clone)]
pub struct Scratch(Buffers<1>);

impl Scratch {
    /// Empty buffers; [`Forest::explain_row`] sizes them.
    pub fn new() -> Self {
        Scratch(Buffers::new())
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

fn explain_error(reason: String) -> Error {
    Error::Explain { reason }
}

/// The fraction of `parent`'s cover a child of cover `cover` holds.
fn cover_fraction(cover: f32, parent: f32) -> f32 {
    if parent <= 0.0 {
        0.5
    } else {
        (cover / parent).max(MIN_FRACTION)
    }
}

/// Flattens one tree into `nodes`.
struct Flatten<'a> {
    tree: &'a RegTree,
    /// Index of the tree in the model, for errors.
    index: usize,
    weight: f32,
    n_features: usize,
    nodes: &'a mut Vec<Node>,
}

impl Flatten<'_> {
    /// Append the subtree at `id` (reached from a parent of cover
    /// `parent_cover`, `None` for the root) in pre-order; returns its index
    /// and its expected value (the leaves' values weighted by the products
    /// of the fractions down to them, the tree weight included).
    fn node(&mut self, id: usize, parent_cover: Option<f32>) -> Result<(u32, f64)> {
        let src = self.tree.node(id);
        let tree = self.index;
        if src.sum_hess.is_nan() || src.sum_hess < 0.0 {
            return Err(explain_error(format!(
                "tree {tree} node {id} has cover {} (TreeSHAP needs non-negative covers)",
                src.sum_hess
            )));
        }
        let at = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&at| at != u32::MAX)
            .ok_or_else(|| explain_error("the forest has more than 2^32 - 1 nodes".into()))?;
        let fraction = parent_cover.map_or(1.0, |p| cover_fraction(src.sum_hess, p));
        if src.is_leaf() {
            let value = src.leaf_value * self.weight;
            self.nodes.push(Node {
                feature: LEAF,
                threshold: 0.0,
                left: 0,
                right: 0,
                default_left: false,
                fraction,
                value,
            });
            return Ok((at, f64::from(value)));
        }
        if src.is_categorical {
            return Err(explain_error(format!(
                "tree {tree} node {id} splits feature {} by category (cdp's TreeSHAP explains \
                 numeric splits only)",
                src.split_feature
            )));
        }
        if src.split_feature as usize >= self.n_features {
            return Err(explain_error(format!(
                "tree {tree} node {id} splits feature {} of a model of {} features",
                src.split_feature, self.n_features
            )));
        }
        self.nodes.push(Node {
            feature: src.split_feature,
            threshold: src.split_cond,
            left: 0,
            right: 0,
            default_left: src.default_left,
            fraction,
            value: 0.0,
        });
        let (left, left_mean) = self.node(src.left as usize, Some(src.sum_hess))?;
        let (right, right_mean) = self.node(src.right as usize, Some(src.sum_hess))?;
        let node = &mut self.nodes[at as usize];
        node.left = left;
        node.right = right;
        let (lf, rf) = (
            self.nodes[left as usize].fraction,
            self.nodes[right as usize].fraction,
        );
        Ok((at, f64::from(lf) * left_mean + f64::from(rf) * right_mean))
    }
}

impl Forest {
    /// Flatten every tree of `model` (all its boosting rounds, as cdp
    /// predicts them), with each tree's weight applied to its leaves, and
    /// compute the bias: `base_score` in margin space plus each tree's
    /// expected value.
    ///
    /// # Errors
    ///
    /// [`Error::Explain`] for a model this TreeSHAP does not explain: a
    /// gblinear model, more than one output, vector or linear leaves, a
    /// categorical split, a negative cover, a split on a feature past the
    /// model's, a tree deeper than [`MAX_DEPTH`].
    pub fn new(model: &BoostedModel) -> Result<Forest> {
        if model.linear().is_some() {
            return Err(explain_error(
                "a gblinear model has no trees (its contributions are weight × value)".into(),
            ));
        }
        if model.n_outputs() != 1 {
            return Err(explain_error(format!(
                "the model has {} outputs (cdp explains models of one)",
                model.n_outputs()
            )));
        }
        let n_features = model.n_features();
        let trees = model.trees();
        let mut nodes = Vec::with_capacity(trees.iter().map(RegTree::num_nodes).sum());
        let mut roots = Vec::with_capacity(trees.len());
        let mut bias = f64::from(model.base_score());
        let mut max_depth = 0;
        for (index, (tree, weight)) in trees.iter().zip(model.tree_weights()).enumerate() {
            if tree.is_vector_leaf() {
                return Err(explain_error(format!("tree {index} has vector leaves")));
            }
            if tree.linear_leaves().is_some() {
                return Err(explain_error(format!(
                    "tree {index} has linear leaves (TreeSHAP needs constant leaves)"
                )));
            }
            let depth = tree.depth();
            if depth > MAX_DEPTH {
                return Err(explain_error(format!(
                    "tree {index} is {depth} levels deep (at most {MAX_DEPTH})"
                )));
            }
            max_depth = max_depth.max(depth);
            let (root, mean) = Flatten {
                tree,
                index,
                weight,
                n_features,
                nodes: &mut nodes,
            }
            .node(0, None)?;
            roots.push(root);
            bias += mean;
        }
        let recip = (0..=max_depth + 2)
            .map(|k| if k == 0 { 0.0 } else { 1.0 / k as Real })
            .collect();
        Ok(Forest {
            nodes,
            roots,
            n_features,
            max_depth,
            bias,
            recip,
        })
    }

    /// Feature values a row holds.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Nodes of all trees.
    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The deepest tree's depth (edges from root to leaf).
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// The expected margin: `base_score` plus every tree's cover-weighted
    /// expected value (the last value of every row's contributions).
    pub fn bias(&self) -> f32 {
        self.bias as f32
    }

    /// The contributions of one row (`n_features` values, `NaN` for
    /// missing) into `out` (`n_features + 1` values, the bias last), using
    /// `scratch`; allocates nothing once `scratch` has explained a row of
    /// this forest.
    ///
    /// # Errors
    ///
    /// [`Error::FeatureCount`] for a row of another length,
    /// [`Error::Shape`] for an `out` of another length.
    pub fn explain_row(&self, row: &[f32], scratch: &mut Scratch, out: &mut [f32]) -> Result<()> {
        if row.len() != self.n_features {
            return Err(Error::FeatureCount {
                expected: self.n_features,
                got: row.len(),
            });
        }
        if out.len() != self.n_features + 1 {
            return Err(Error::Shape {
                what: "contributions of a row (features + bias)",
                expected: self.n_features + 1,
                got: out.len(),
            });
        }
        self.explain([row], &mut scratch.0, [out]);
        Ok(())
    }

    /// The contributions of row-major `rows`, `n_features + 1` per row
    /// (the bias last): blocks of [`LANES`] rows walk the trees together,
    /// chunks of [`CHUNK_ROWS`] rows in parallel on rayon's pool, each
    /// worker with its own buffers.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `rows` does not hold whole rows.
    pub fn contributions(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let nf = self.n_features;
        if nf == 0 || !rows.len().is_multiple_of(nf) {
            return Err(Error::Shape {
                what: "rows (whole rows of the model's features)",
                expected: rows.len().next_multiple_of(nf.max(1)),
                got: rows.len(),
            });
        }
        let n = rows.len() / nf;
        let width = nf + 1;
        let mut out = vec![0.0f32; n * width];
        if n <= CHUNK_ROWS {
            self.explain_chunk(rows, &mut out, &mut Buffers::new(), &mut Buffers::new());
        } else {
            out.par_chunks_mut(CHUNK_ROWS * width)
                .zip(rows.par_chunks(CHUNK_ROWS * nf))
                .for_each_init(
                    || (Buffers::new(), Buffers::new()),
                    |(block, single), (out, rows)| self.explain_chunk(rows, out, block, single),
                );
        }
        Ok(out)
    }

    /// The contributions of checked `rows` into `out`: [`LANES`] rows at a
    /// time (up to [`LOCKSTEP_MAX_DEPTH`]), the rest one by one.
    fn explain_chunk(
        &self,
        rows: &[f32],
        out: &mut [f32],
        block: &mut Buffers<LANES>,
        single: &mut Buffers<1>,
    ) {
        let nf = self.n_features;
        let width = nf + 1;
        let blocks = if self.max_depth <= LOCKSTEP_MAX_DEPTH {
            rows.len() / (nf * LANES)
        } else {
            0
        };
        let (rows, rest) = rows.split_at(blocks * LANES * nf);
        let (out, rest_out) = out.split_at_mut(blocks * LANES * width);
        for (rows, out) in rows
            .chunks_exact(LANES * nf)
            .zip(out.chunks_exact_mut(LANES * width))
        {
            let mut outs = out.chunks_exact_mut(width);
            self.explain(
                std::array::from_fn(|r| &rows[r * nf..(r + 1) * nf]),
                block,
                std::array::from_fn(|_| outs.next().expect("a block holds LANES rows")),
            );
        }
        for (row, out) in rest.chunks_exact(nf).zip(rest_out.chunks_exact_mut(width)) {
            self.explain([row], single, [out]);
        }
    }

    /// Walk `R` checked rows through every tree into their `out` rows.
    fn explain<const R: usize>(
        &self,
        rows: [&[f32]; R],
        buffers: &mut Buffers<R>,
        out: [&mut [f32]; R],
    ) {
        buffers.fit(self);
        let Buffers { path, phi } = buffers;
        phi.fill([0.0; R]);
        let mut walk = Walk {
            nodes: &self.nodes,
            rows,
            path,
            phi,
            recip: &self.recip,
        };
        for &root in &self.roots {
            walk.node(root, 0, 0, 1.0, [1.0; R], NO_FEATURE);
        }
        for (r, out) in out.into_iter().enumerate() {
            for (o, p) in out.iter_mut().zip(phi.iter()) {
                *o = p[r] as f32;
            }
            out[self.n_features] = self.bias as f32;
        }
    }
}

/// A walk of `R` rows through the trees together (Algorithm 2's
/// `RECURSE`, each row's arithmetic its own).
struct Walk<'a, const R: usize> {
    nodes: &'a [Node],
    rows: [&'a [f32]; R],
    /// Every level's unique path: a level of unique depth `d` whose parent's
    /// path starts at `p` keeps its own `d + 1` elements at `p + d + 1`.
    path: &'a mut [PathElement<R>],
    phi: &'a mut [[f64; R]],
    /// `recip[k] = 1 / k` ([`Forest::recip`]).
    recip: &'a [Real],
}

impl<const R: usize> Walk<'_, R> {
    /// Visit node `at`, whose parent's unique path starts at `parent` and
    /// holds `depth` elements, entered with the zero fraction and each
    /// row's one fraction of the split `feature` above it.
    fn node(
        &mut self,
        at: u32,
        parent: usize,
        depth: usize,
        zero: Real,
        one: [Real; R],
        feature: u32,
    ) {
        let start = parent + depth + 1;
        let (above, below) = self.path.split_at_mut(start);
        below[..depth].copy_from_slice(&above[parent..parent + depth]);
        let path = &mut below[..=depth];
        extend(path, depth, zero, one, feature, self.recip);
        let node = self.nodes[at as usize];
        if node.feature == LEAF {
            leaf(path, depth, Real::from(node.value), self.phi, self.recip);
            return;
        }
        let f = node.feature as usize;
        let goes_left: [bool; R] = std::array::from_fn(|r| {
            let x = self.rows[r][f];
            if x.is_nan() {
                node.default_left
            } else {
                x < node.threshold
            }
        });
        // A feature split on above: unwind it, and walk on with its
        // fractions multiplied into this split's.
        let (mut in_zero, mut in_one, mut depth) = (1.0, [1.0; R], depth);
        if let Some(k) = (1..=depth).find(|&k| path[k].feature == node.feature) {
            in_zero = path[k].zero;
            in_one = path[k].one;
            unwind(path, depth, k, self.recip);
            depth -= 1;
        }
        let fraction = |child: u32| Real::from(self.nodes[child as usize].fraction) * in_zero;
        let (left_zero, right_zero) = (fraction(node.left), fraction(node.right));
        let left_one = std::array::from_fn(|r| if goes_left[r] { in_one[r] } else { 0.0 });
        let right_one = std::array::from_fn(|r| if goes_left[r] { 0.0 } else { in_one[r] });
        self.node(
            node.left,
            start,
            depth + 1,
            left_zero,
            left_one,
            node.feature,
        );
        self.node(
            node.right,
            start,
            depth + 1,
            right_zero,
            right_one,
            node.feature,
        );
    }
}

/// EXTEND: append `feature` with fractions `zero` and `one` to the path of
/// `depth` elements in `path[..depth]`. `recip[k]` is `1 / k`.
#[inline]
fn extend<const R: usize>(
    path: &mut [PathElement<R>],
    depth: usize,
    zero: Real,
    one: [Real; R],
    feature: u32,
    recip: &[Real],
) {
    path[depth] = PathElement {
        feature,
        zero,
        one,
        weight: [if depth == 0 { 1.0 } else { 0.0 }; R],
    };
    let inv = recip[depth + 1];
    for i in (0..depth).rev() {
        let up = (i + 1) as Real * inv;
        let down = zero * (depth - i) as Real * inv;
        let (low, high) = path.split_at_mut(i + 1);
        let (el, next) = (&mut low[i], &mut high[0]);
        for ((w, next), one) in el.weight.iter_mut().zip(&mut next.weight).zip(one) {
            let v = *w;
            *next += one * v * up;
            *w = v * down;
        }
    }
}

/// UNWIND: remove element `k` from the path of `depth + 1` elements,
/// undoing its EXTEND (row by row: a followed element's recurrence, or an
/// unfollowed one's scaling).
#[inline]
fn unwind<const R: usize>(path: &mut [PathElement<R>], depth: usize, k: usize, recip: &[Real]) {
    let path = &mut path[..=depth];
    let (zero, one) = (path[k].zero, path[k].one);
    let d1 = (depth + 1) as Real;
    // A zero fraction of 0 (unreachable with floored fractions) leaves an
    // unfollowed element's weights all 0: scale them by 0.
    let inv_zero = if zero != 0.0 { 1.0 / zero } else { 0.0 };
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        let restore = d1 * recip[i + 1];
        let take = zero * (depth - i) as Real * recip[depth + 1];
        let scale = d1 * inv_zero * recip[depth - i];
        let el = &mut path[i];
        for r in 0..R {
            let w = el.weight[r];
            if one[r] != 0.0 {
                let restored = next[r] * restore;
                el.weight[r] = restored;
                next[r] = w - restored * take;
            } else {
                el.weight[r] = w * scale;
            }
        }
    }
    for i in k..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

/// The leaf step: add each path feature's share of `value` to `phi`:
/// `(one − zero) · value` times the path's weight sum with the feature
/// unwound (Algorithm 2's UNWOUND-SUM).
///
/// * For a feature a row does not follow (`one == 0`) that sum is
///   `Σ_i weight_i (d + 1) / (d − i)` divided by its `zero`, so its share
///   is that sum times `−value`, the same for every such feature: computed
///   once per leaf.
/// * For a followed one (`one == 1`) it is UNWIND's recurrence summed,
///   O(d), skipped for a feature no row of the walk follows.
#[inline]
fn leaf<const R: usize>(
    path: &[PathElement<R>],
    depth: usize,
    value: Real,
    phi: &mut [[f64; R]],
    recip: &[Real],
) {
    if depth == 0 {
        return;
    }
    let path = &path[..=depth];
    let d1 = (depth + 1) as Real;
    let mut cold = [0.0; R];
    for (i, el) in path[..depth].iter().enumerate() {
        let c = recip[depth - i];
        for (cold, w) in cold.iter_mut().zip(el.weight) {
            *cold += w * c;
        }
    }
    let cold_share: [Real; R] = std::array::from_fn(|r| -cold[r] * d1 * value);
    for el in &path[1..] {
        let phi = &mut phi[el.feature as usize];
        if el.one.iter().all(|&o| o == 0.0) {
            for r in 0..R {
                phi[r] += f64::from(cold_share[r]);
            }
            continue;
        }
        let zero_d1 = el.zero * recip[depth + 1];
        let mut next = path[depth].weight;
        let mut total = [0.0; R];
        for i in (0..depth).rev() {
            let a = d1 * recip[i + 1];
            let b = zero_d1 * (depth - i) as Real;
            let w = &path[i].weight;
            for r in 0..R {
                let t = next[r] * a;
                total[r] += t;
                next[r] = w[r] - t * b;
            }
        }
        let hot = (1.0 - el.zero) * value;
        for r in 0..R {
            phi[r] += f64::from(if el.one[r] != 0.0 {
                total[r] * hot
            } else {
                cold_share[r]
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use hessboost::model::ModelFormat;
    use hessboost::prelude::DMatrix;
    use serde_json::json;

    use super::*;
    use crate::model::gbdt::GbdtModel;
    use crate::model::{Dataset, Params};
    use cdp_core::progress::Silent;

    /// xorshift in [0, 1).
    fn rng(seed: u64) -> impl FnMut() -> f32 {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    /// `rows` rows of `cols` features, `missing` of the cells `NaN`, with a
    /// binary label from a non-linear signal (a missing `x1` counting high).
    fn data(rows: usize, cols: usize, missing: f32, seed: u64) -> Dataset {
        let mut next = rng(seed);
        let mut values = Vec::with_capacity(rows * cols);
        let mut labels = Vec::with_capacity(rows);
        for _ in 0..rows {
            let start = values.len();
            for _ in 0..cols {
                let v = next() * 4.0 - 2.0;
                values.push(if next() < missing { f32::NAN } else { v });
            }
            let x = |j: usize| values[start + j % cols];
            let x1 = if x(1).is_nan() { 1.5 } else { x(1) };
            let signal = x(0).max(-1.0) * x1 + (x(2) * 2.0).sin() - x(3).abs() * 0.5;
            labels.push(f32::from(u8::from(signal + next() - 0.5 > 0.0)));
        }
        let names = (0..cols).map(|j| format!("x{j}")).collect();
        Dataset::new(names, values, labels).unwrap()
    }

    fn fit(train: &Dataset, params: &[&str]) -> GbdtModel {
        GbdtModel::fit(train, None, &Params::from_pairs(params).unwrap(), &Silent).unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// A native-JSON hessboost model of hand-written trees: each node is
    /// `(feature, threshold, default_left, left, right, leaf, cover)`.
    type HandNode = (u32, f32, bool, i32, i32, f32, f32);

    fn hand_model(
        trees: &[&[HandNode]],
        weights: &[f32],
        base_score: f32,
        n_features: usize,
    ) -> BoostedModel {
        let trees: Vec<_> = trees
            .iter()
            .map(|nodes| {
                let nodes: Vec<_> = nodes
                    .iter()
                    .map(|&(f, t, dl, l, r, v, c)| {
                        json!({"split_feature": f, "split_cond": t, "default_left": dl,
                               "left": l, "right": r, "leaf_value": v, "sum_hess": c,
                               "split_gain": 0.0, "is_categorical": false,
                               "cat_begin": 0, "cat_end": 0})
                    })
                    .collect();
                json!({"nodes": nodes, "categories": [], "linear": null})
            })
            .collect();
        let doc = json!({"trees": trees, "base_score": [base_score],
            "objective": "reg:squarederror", "num_class": 0, "n_outputs": 1, "n_targets": 1,
            "n_features": n_features, "best_iteration": null, "tree_weights": weights,
            "num_parallel_tree": 1, "linear": null});
        BoostedModel::decode(serde_json::to_vec(&doc).unwrap(), ModelFormat::Json).unwrap()
    }

    /// The path-dependent expectation of `tree` for row `x` knowing the
    /// features in `known` (a bit set): the row's branch at a known
    /// feature, the cover-weighted mean of both branches at the others.
    fn expectation(tree: &RegTree, id: usize, x: &[f32], known: u32) -> f64 {
        let n = tree.node(id);
        if n.is_leaf() {
            return f64::from(n.leaf_value);
        }
        let (l, r) = (n.left as usize, n.right as usize);
        if known & (1 << n.split_feature) != 0 {
            let v = x[n.split_feature as usize];
            let left = if v.is_nan() {
                n.default_left
            } else {
                v < n.split_cond
            };
            return expectation(tree, if left { l } else { r }, x, known);
        }
        let (el, er) = (
            expectation(tree, l, x, known),
            expectation(tree, r, x, known),
        );
        if n.sum_hess == 0.0 {
            // a coverless split: half each way
            return 0.5 * (el + er);
        }
        let (cl, cr) = (tree.node(l).sum_hess, tree.node(r).sum_hess);
        (f64::from(cl) * el + f64::from(cr) * er) / f64::from(n.sum_hess)
    }

    /// Shapley values of the path-dependent game by enumerating every
    /// subset, summed over the trees with their weights; bias last.
    fn brute_force(model: &BoostedModel, x: &[f32]) -> Vec<f64> {
        let m = x.len();
        let factorial = |k: usize| (1..=k).map(|i| i as f64).product::<f64>();
        let mut phi = vec![0.0; m + 1];
        phi[m] = f64::from(model.base_score());
        for (tree, weight) in model.trees().iter().zip(model.tree_weights()) {
            let weight = f64::from(weight);
            let v = |s: u32| expectation(tree, 0, x, s) * weight;
            phi[m] += v(0);
            for (i, phi) in phi.iter_mut().enumerate().take(m) {
                for s in 0..(1u32 << m) {
                    if s & (1 << i) != 0 {
                        continue;
                    }
                    let size = s.count_ones() as usize;
                    let shapley = factorial(size) * factorial(m - size - 1) / factorial(m);
                    *phi += shapley * (v(s | (1 << i)) - v(s));
                }
            }
        }
        phi
    }

    fn explain_one(forest: &Forest, row: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; forest.n_features() + 1];
        forest
            .explain_row(row, &mut Scratch::new(), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn contributions_sum_to_the_margin_on_rows_with_missing_values() {
        let model = fit(
            &data(3000, 8, 0.15, 1),
            &["num_round=40", "max_depth=6", "eta=0.3"],
        );
        let booster = model.booster();
        let forest = Forest::new(booster).unwrap();
        assert_eq!(forest.n_trees(), 40);
        assert!(forest.max_depth() >= 5, "{forest:?}");
        let rows = data(500, 8, 0.2, 2);
        let margins = booster
            .predict_margin_rows(rows.values(), ..)
            .unwrap()
            .into_vec();
        let contribs = forest.contributions(rows.values()).unwrap();
        let mut worst = 0.0f64;
        for (r, row) in contribs.chunks(9).enumerate() {
            let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
            worst = worst.max((sum - f64::from(margins[r])).abs());
            // every row is explained alike alone and in a batch
            assert_eq!(row, explain_one(&forest, rows.row(r)).as_slice());
        }
        eprintln!("max |sum - margin| = {worst:e}");
        assert!(worst < 1e-4, "{worst}");
    }

    #[test]
    fn contributions_match_hessboost_predict_contribs() {
        let train = data(2000, 6, 0.1, 3);
        for params in [
            &["num_round=30", "max_depth=6", "eta=0.3"][..],
            &[
                "num_round=20",
                "max_depth=3",
                "eta=0.5",
                "objective=reg:squarederror",
            ],
        ] {
            let model = fit(&train, params);
            let rows = data(400, 6, 0.25, 4);
            let forest = Forest::new(model.booster()).unwrap();
            let ours = forest.contributions(rows.values()).unwrap();
            let matrix = DMatrix::from_dense(rows.values(), 400, 6).unwrap();
            let theirs = model
                .booster()
                .predict_contribs(&matrix, ..)
                .unwrap()
                .into_vec();
            let diff = max_diff(&ours, &theirs);
            eprintln!("{params:?}: max |ours - hessboost| = {diff:e}");
            assert!(diff < 1e-4, "{params:?}: {diff}");
        }
    }

    #[test]
    fn contributions_are_the_shapley_values_of_the_path_dependent_game() {
        // Tree 0 splits x0 twice on one path (UNWIND), sends missing values
        // both ways, and has a coverless split; tree 1 weighs 0.5 (dart).
        let tree0: &[HandNode] = &[
            (0, 0.5, true, 1, 2, 0.0, 10.0),
            (1, 0.0, false, 3, 4, 0.0, 6.0),
            (2, 1.0, true, 5, 6, 0.0, 4.0),
            (0, -1.0, true, 7, 8, 0.0, 2.5),
            (0, 0.25, false, 9, 10, 0.0, 3.5),
            (0, 0.0, true, -1, -1, 0.7, 1.0),
            (3, 0.0, false, 11, 12, 0.0, 3.0),
            (0, 0.0, true, -1, -1, -1.2, 1.0),
            (0, 0.0, true, -1, -1, 0.4, 1.5),
            (0, 0.0, true, -1, -1, 2.0, 0.0),
            (0, 0.0, true, -1, -1, -0.3, 3.5),
            (1, 2.0, true, 13, 14, 0.0, 0.0),
            (0, 0.0, true, -1, -1, 0.9, 3.0),
            (0, 0.0, true, -1, -1, 5.0, 0.0),
            (0, 0.0, true, -1, -1, -5.0, 0.0),
        ];
        let tree1: &[HandNode] = &[
            (3, 0.5, false, 1, 2, 0.0, 8.0),
            (1, 0.5, true, 3, 4, 0.0, 5.0),
            (0, 0.0, true, -1, -1, 1.5, 3.0),
            (1, 1.5, false, 5, 6, 0.0, 2.0),
            (0, 0.0, true, -1, -1, -0.5, 3.0),
            (0, 0.0, true, -1, -1, 0.25, 1.0),
            (0, 0.0, true, -1, -1, -2.0, 1.0),
        ];
        let model = hand_model(&[tree0, tree1], &[1.0, 0.5], 0.3, 4);
        let forest = Forest::new(&model).unwrap();
        assert_eq!(forest.max_depth(), 4);
        let grid = [f32::NAN, -2.0, -0.5, 0.1, 0.3, 0.75, 1.2, 3.0];
        let mut worst = 0.0f64;
        let mut rows = Vec::new();
        for (a, b) in (0..8).flat_map(|a| (0..8).map(move |b| (a, b))) {
            let row = [
                grid[a],
                grid[b],
                grid[(a + 3 * b) % 8],
                grid[(5 * a + b) % 8],
            ];
            let ours = explain_one(&forest, &row);
            let exact = brute_force(&model, &row);
            for (o, e) in ours.iter().zip(&exact) {
                worst = worst.max((f64::from(*o) - e).abs());
            }
            let margin = model.predict_margin_rows(&row, ..).unwrap().into_vec()[0];
            let sum: f32 = ours.iter().sum();
            assert!((sum - margin).abs() < 1e-5, "{row:?}: {sum} vs {margin}");
            rows.extend(row);
        }
        assert!(worst < 1e-5, "max |ours - brute force| = {worst}");
        // ... and a trained model of five features against the brute force
        let model = fit(
            &data(1500, 5, 0.2, 5),
            &["num_round=6", "max_depth=4", "eta=0.4"],
        );
        let forest = Forest::new(model.booster()).unwrap();
        let rows = data(60, 5, 0.3, 6);
        let ours = forest.contributions(rows.values()).unwrap();
        for r in 0..60 {
            let exact = brute_force(model.booster(), rows.row(r));
            for (o, e) in ours[r * 6..(r + 1) * 6].iter().zip(&exact) {
                assert!((f64::from(*o) - e).abs() < 1e-5, "row {r}: {o} vs {e}");
            }
        }
    }

    /// A tree of `depth` splits on features 0, 1, 2 in turn, each with a
    /// leaf on one side (alternately left and right) and the next split on
    /// the other.
    fn caterpillar(depth: usize, seed: u64) -> Vec<HandNode> {
        let mut next = rng(seed);
        let mut nodes = Vec::new();
        let mut cover = 1000.0f32;
        for i in 0..depth {
            let at = nodes.len() as i32;
            let (leaf, rest) = (at + 1, at + 2);
            let (left, right) = if i % 2 == 0 {
                (leaf, rest)
            } else {
                (rest, leaf)
            };
            let threshold = next() * 2.0 - 1.0;
            nodes.push((
                (i % 3) as u32,
                threshold,
                next() < 0.5,
                left,
                right,
                0.0,
                cover,
            ));
            let share = 0.2 + next() * 0.2;
            nodes.push((0, 0.0, true, -1, -1, next() * 2.0 - 1.0, cover * share));
            cover *= 1.0 - share;
        }
        nodes.push((0, 0.0, true, -1, -1, next() * 2.0 - 1.0, cover));
        nodes
    }

    #[test]
    fn deep_trees_with_repeated_features_are_exact() {
        // 20 levels are walked a block of rows at a time, 70 a row at a time
        for depth in [20, 70] {
            let model = hand_model(&[&caterpillar(depth, 7)], &[], -0.2, 3);
            let forest = Forest::new(&model).unwrap();
            assert_eq!(forest.max_depth(), depth);
            let mut next = rng(8);
            let rows: Vec<f32> = (0..3 * 40)
                .map(|_| {
                    let v = next() * 2.4 - 1.2;
                    if next() < 0.15 { f32::NAN } else { v }
                })
                .collect();
            let ours = forest.contributions(&rows).unwrap();
            let mut worst = 0.0f64;
            for (r, row) in rows.chunks(3).enumerate() {
                let exact = brute_force(&model, row);
                for (o, e) in ours[r * 4..(r + 1) * 4].iter().zip(&exact) {
                    worst = worst.max((f64::from(*o) - e).abs());
                }
                assert_eq!(&ours[r * 4..(r + 1) * 4], explain_one(&forest, row));
            }
            eprintln!("depth {depth}: max |ours - brute force| = {worst:e}");
            assert!(worst < 1e-5, "depth {depth}: {worst}");
        }
    }

    #[test]
    fn refusals_are_clear() {
        let stump = |categorical: bool, cover: f32| {
            let node = |f: u32, l: i32, r: i32, v: f32, c: f32, cat: bool| {
                json!({"split_feature": f, "split_cond": 0.5, "default_left": true,
                       "left": l, "right": r, "leaf_value": v, "sum_hess": c, "split_gain": 0.0,
                       "is_categorical": cat, "cat_begin": 0, "cat_end": u32::from(cat)})
            };
            let doc = json!({"trees": [{"nodes": [
                    node(1, 1, 2, 0.0, 2.0, categorical),
                    node(0, -1, -1, 1.0, cover, false),
                    node(0, -1, -1, -1.0, 1.0, false)],
                "categories": [3], "linear": null}],
                "base_score": [0.0], "objective": "reg:squarederror", "num_class": 0,
                "n_outputs": 1, "n_targets": 1, "n_features": 2, "best_iteration": null,
                "tree_weights": [], "num_parallel_tree": 1, "linear": null});
            BoostedModel::decode(serde_json::to_vec(&doc).unwrap(), ModelFormat::Json).unwrap()
        };
        let err = Forest::new(&stump(true, 1.0)).unwrap_err();
        assert!(
            matches!(err, Error::Explain { ref reason } if reason.contains("tree 0 node 0")
                && reason.contains("category")),
            "{err}"
        );
        let err = Forest::new(&stump(false, -1.0)).unwrap_err();
        assert!(matches!(err, Error::Explain { .. }), "{err}");
        let forest = Forest::new(&stump(false, 1.0)).unwrap();
        let mut out = [0.0; 3];
        assert!(matches!(
            forest.explain_row(&[1.0], &mut Scratch::new(), &mut out),
            Err(Error::FeatureCount {
                expected: 2,
                got: 1
            })
        ));
        assert!(matches!(
            forest.explain_row(&[1.0, 0.0], &mut Scratch::new(), &mut out[..2]),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            forest.contributions(&[1.0; 3]),
            Err(Error::Shape { .. })
        ));
        assert!(forest.contributions(&[]).unwrap().is_empty());
        // x1 = 0.2 goes left (leaf 1 of cover 1 against cover 1 right): the
        // stump's value 1 minus its mean 0 is all x1's
        assert_eq!(explain_one(&forest, &[7.0, 0.2]), vec![0.0, 1.0, 0.0]);
        assert_eq!(explain_one(&forest, &[7.0, 0.5]), vec![0.0, -1.0, 0.0]);
        assert_eq!(explain_one(&forest, &[7.0, f32::NAN]), vec![0.0, 1.0, 0.0]);
    }
}
