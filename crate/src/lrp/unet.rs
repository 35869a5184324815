//! LRP through a U-Net, layer by layer in reverse order, with the rules a [`Composite`] assigns.
//!
//! ReLU and leaky ReLU pass relevance unchanged (Zennit's `Pass`), up-sampling sends it back
//! through its adjoint (the gradient; Zennit has no rule there), norms are merged into their conv
//! (`canonize.rs`), max-pooling routes relevance to each window's winner (Zennit propagates the
//! gradient there), a concat skip splits it by channel, and each branch point (an encoder
//! level's output, read by the skip and by the path down) sums what comes back along both.
//!
//! Nested windows: relevance that starts in a box of logits reaches, at each layer, only that
//! box widened by the receptive field between the layer and the logits (its *reach*). A pass
//! around a box ([`Plan::around`], [`propagate_around`]) runs every layer on its own window
//! (`crop::window_reaching`): the last decoder layers on little more than the box, the first
//! encoder layers on the whole receptive field. The argument of `crop.rs` holds layer by layer
//! (a layer's window exceeds what its relevance reaches by its own kernel radius and one
//! alignment step), so the maps are the same as on the whole grid, for a fraction of the work.

use burn::prelude::*;
use burn::tensor::TensorData;

use super::canonize::merged_conv;
use super::composite::Composite;
use super::rules::{split_channels, Input, Linear, PreparedRule};
use crate::model::unet::{Activation, Activations, Block, BlockTrace, Down, UNet};
use crate::ops::pool::{max_gather3d, max_unpool3d};
use crate::ops::upsample::{upsample2, upsample2_adjoint};
use crate::spatial::crop::{crop_tensor, refit, window_reaching, Window};

/// The input relevance for one output voxel and class.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// `[1, C, D, H, W]`, same grid as the network input.
    pub relevance: Tensor<5>,
    /// The explained logit `y_c(a)`: the relevance the pass starts from.
    pub logit: Tensor<1>,
}

/// What an explanation starts from at its output voxel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Target {
    /// The logit `y_c` of the class explained.
    #[default]
    Logit,
    /// The logit difference `y_c − y_o`: relevance starts as `y_c` on class `c` and `−y_o` on
    /// class `o` (LRP-0 through the difference), i.e. `logits ⊙ (e_c − e_o)`, as Zennit does with
    /// `attr_output = output * (onehot_c − onehot_o)`.
    Difference { other: usize },
}

/// Start relevance for `target` of `class` at voxel `(d, h, w)`, zero elsewhere.
pub fn start_for(logits: &Tensor<5>, class: usize, voxel: [usize; 3], target: Target) -> Tensor<5> {
    let dims = logits.dims();
    let [_, _, d, h, w] = dims;
    let at = |c: usize| ((c * d + voxel[0]) * h + voxel[1]) * w + voxel[2];
    let mut mask = vec![0f32; dims.iter().product()];
    mask[at(class)] = 1.0;
    if let Target::Difference { other } = target {
        mask[at(other)] = -1.0;
    }
    logits.clone() * Tensor::from_data(TensorData::new(mask, dims), &logits.device())
}

/// One-hot start relevance: the logit of `class` at voxel `(d, h, w)`, zero elsewhere.
pub fn start_relevance(logits: &Tensor<5>, class: usize, voxel: [usize; 3]) -> Tensor<5> {
    start_for(logits, class, voxel, Target::Logit)
}

/// One linear layer of the U-Net as LRP meets it: its name (for the composite), its map, what
/// it read in the forward pass and what is known of that input.
struct Site {
    name: String,
    layer: Linear,
    x: Tensor<5>,
    input: Input,
    /// The layer's output `x ⋆ w + b` where the forward pass kept exactly that (a conv without
    /// a norm merged into it, the head's logits).
    z: Option<Tensor<5>>,
    /// Full-resolution voxels by which this layer, and what the walk does between it and the
    /// next layer (un-pooling, up-sampling's adjoint), widen the relevance's support.
    reach: usize,
}

impl Site {
    /// The rule for this layer on window `w` of the full grid `full`.
    fn prepare(&self, composite: &Composite, w: &Window, full: [usize; 3]) -> PreparedRule {
        let crop =
            |t: &Tensor<5>| if *w == crate::spatial::crop::whole(full) { t.clone() } else { crop_tensor(t, w, full) };
        PreparedRule::with_output(
            &composite.rule(&self.name),
            &self.layer,
            crop(&self.x),
            self.input,
            self.z.as_ref().map(crop),
        )
    }
}

/// Full-resolution voxels a stride-1 conv reaches at `level` (its kernel radius), or a strided
/// one (its footprint beyond the first voxel).
fn conv_reach(kernel: usize, stride: usize, dilation: usize, level: usize) -> usize {
    let span = (kernel - 1) * dilation;
    (if stride == 1 { span / 2 } else { span }) << level
}

/// Every linear layer in the order [`propagate`] meets them (output to input).
fn sites(net: &UNet, act: &Activations) -> Vec<Site> {
    let cfg = &net.config;
    // What each layer reads: a ReLU's output (max-pooled or up-sampled, still ≥ 0), except the
    // MRI itself and a decoder's concatenation, half of which is a linear up-sampling's output.
    let activated = if cfg.activation == Activation::Relu { Input::NonNegative } else { Input::Signed };
    let site = |name: String, layer: Linear, x: &Tensor<5>, input: Input| Site {
        name,
        layer,
        x: x.clone(),
        input,
        z: None,
        reach: 0,
    };
    // `in_level`: the level of the blocks' input; `unpool`: what max-unpooling after the first
    // block adds.
    let blocks = |out: &mut Vec<Site>,
                  blocks: &[Block],
                  traces: &[BlockTrace],
                  prefix: &str,
                  first: Input,
                  level: usize,
                  unpool: usize| {
        for (b, (block, trace)) in blocks.iter().zip(traces).enumerate().rev() {
            let input = if b == 0 { first } else { activated };
            let z = block.norm.is_none().then(|| trace.conv_out.clone());
            let c = &block.conv;
            // A strided conv (the down step) reads the level above.
            let in_level = if c.stride[0] > 1 { level - 1 } else { level };
            let reach =
                conv_reach(c.kernel_size[0], c.stride[0], c.dilation[0], in_level) + if b == 0 { unpool } else { 0 };
            out.push(Site {
                z,
                reach,
                ..site(format!("{prefix}.{b}.conv"), merged_conv(block, trace), &trace.input, input)
            });
        }
    };
    let mut out = vec![Site {
        z: Some(act.logits.clone()),
        ..site("head".into(), Linear::conv(&net.head), &act.head_input, activated)
    }];
    for i in (0..net.decoder.len()).rev() {
        let level = cfg.levels - 2 - i;
        blocks(&mut out, &net.decoder[i], &act.decoder[i], &format!("decoder.{i}"), Input::Signed, level, 0);
        let up = &net.ups[i];
        // The up step: a coarse voxel feeds the fine voxels above it, and trilinear
        // interpolation its neighbours too.
        let coarse = 1usize << (level + 1);
        out.push(match (&up.transposed, &up.conv, &act.up_sampled[i]) {
            (Some(t), _, _) => Site {
                reach: coarse,
                ..site(format!("ups.{i}"), Linear::conv_transpose(t), &act.up_inputs[i], activated)
            },
            (None, Some(conv), Some(sampled)) => {
                let interpolation = if up.mode == crate::model::unet::Up::Trilinear { 2 * coarse } else { coarse };
                let reach = conv_reach(conv.kernel_size[0], 1, conv.dilation[0], level) + interpolation;
                Site { reach, ..site(format!("ups.{i}"), Linear::conv(conv), sampled, activated) }
            }
            _ => unreachable!("forward and network agree"),
        });
    }
    for level in (0..cfg.levels).rev() {
        let first = if level == 0 { Input::Signed } else { activated };
        let unpool = if level > 0 && cfg.down == Down::MaxPool { 1 << (level - 1) } else { 0 };
        blocks(&mut out, &net.encoder[level], &act.encoder[level], &format!("encoder.{level}"), first, level, unpool);
    }
    out
}

/// Each layer's window (in [`propagate`]'s order) on a grid of `full`: for relevance starting
/// in the box `[first, last]` of the logits (tensor axes), nested around it; for `None`, the
/// whole grid.
fn windows(net: &UNet, sites: &[Site], around: Option<([usize; 3], [usize; 3])>, full: [usize; 3]) -> Vec<Window> {
    let Some((first, last)) = around else { return vec![crate::spatial::crop::whole(full); sites.len()] };
    let mut reach = 0usize;
    sites
        .iter()
        .map(|s| {
            reach += s.reach;
            window_reaching(&net.config, reach, first, last, full)
        })
        .collect()
}

/// What [`receptive_radius`](crate::spatial::crop::receptive_radius) adds up, layer by layer: the
/// layers' reaches in [`propagate`]'s order (for the test that the two agree).
pub fn reaches(net: &UNet, act: &Activations) -> Vec<usize> {
    sites(net, act).iter().map(|s| s.reach).collect()
}

fn grid(act: &Activations) -> [usize; 3] {
    let [_, _, d, h, w] = act.x.dims();
    [d, h, w]
}

/// The rules of a composite applied to every layer of one forward pass ([`PreparedRule`]s, in
/// [`propagate`]'s order, each on its layer's window): what several passes through one forward
/// pass share. Holds a few tensors the size of each layer's window.
pub struct Plan {
    rules: Vec<PreparedRule>,
    windows: Vec<Window>,
}

impl Plan {
    /// Every layer on the whole grid: any relevance of the logits may be propagated.
    pub fn new(net: &UNet, act: &Activations, composite: &Composite) -> Plan {
        Plan::on(net, act, composite, None)
    }

    /// Every layer on its nested window around the box `[first, last]` (tensor axes) of the
    /// logits: relevance propagated with this plan must be zero outside that box, and column
    /// sums are exact only inside it.
    pub fn around(net: &UNet, act: &Activations, composite: &Composite, first: [usize; 3], last: [usize; 3]) -> Plan {
        Plan::on(net, act, composite, Some((first, last)))
    }

    fn on(net: &UNet, act: &Activations, composite: &Composite, around: Option<([usize; 3], [usize; 3])>) -> Plan {
        let full = grid(act);
        let sites = sites(net, act);
        let windows = windows(net, &sites, around, full);
        Plan { rules: sites.iter().zip(&windows).map(|(s, w)| s.prepare(composite, w, full)).collect(), windows }
    }
}

/// The walk of [`propagate`] with the `k`-th layer's map given by `rule(k)`, run on `windows[k]`;
/// `r` lives on `windows[0]`, the result on the last window.
fn walk_back(
    net: &UNet,
    act: &Activations,
    mut rule: impl FnMut(usize) -> PreparedRule,
    windows: &[Window],
    r: Tensor<5>,
) -> Tensor<5> {
    let cfg = &net.config;
    let full = grid(act);
    let mut k = 0;
    // The window the relevance in hand lives on.
    let mut at = windows[0];
    let mut next = |r: Tensor<5>, at: &mut Window| {
        let r = refit(r, at, &windows[k]);
        *at = windows[k];
        let out = rule(k).apply(r);
        k += 1;
        out
    };
    let mut r = next(r, &mut at);
    let mut skips: Vec<Option<(Tensor<5>, Window)>> = vec![None; cfg.levels];
    for i in (0..net.decoder.len()).rev() {
        let level = cfg.levels - 2 - i;
        for _ in &net.decoder[i] {
            r = next(r, &mut at);
        }
        let c = cfg.channels(level);
        let [r_skip, r_up]: [Tensor<5>; 2] = split_channels(r, &[c, c]).try_into().expect("two parts");
        skips[level] = Some((r_skip, at));
        let up = &net.ups[i];
        r = next(r_up, &mut at);
        if up.transposed.is_none() {
            r = upsample2_adjoint(r, up.upsample_mode());
        }
    }
    for level in (0..cfg.levels).rev() {
        if let Some((skip, from)) = skips[level].take() {
            r = r + refit(skip, &from, &at);
        }
        for _ in &net.encoder[level] {
            r = next(r, &mut at);
        }
        if level > 0 && cfg.down == Down::MaxPool {
            let below = crop_tensor(&act.encoder[level - 1].last().expect("≥ 1 block").output, &at, full);
            r = max_unpool3d(below, r, [2; 3]);
        }
    }
    r
}

/// Relevance of the network input for a given relevance `r` of the logits (zero except where
/// the explanation starts). Linear in `r` for a fixed forward pass. Each layer's rule is made
/// when the walk reaches it and dropped after, so one pass holds one layer's at a time.
pub fn propagate(net: &UNet, act: &Activations, composite: &Composite, r: Tensor<5>) -> Tensor<5> {
    propagate_in(net, act, composite, r, None)
}

/// [`propagate`] for relevance `r` that is zero outside the box `[first, last]` of the logits
/// (tensor axes), each layer on its nested window: the same map.
pub fn propagate_around(
    net: &UNet,
    act: &Activations,
    composite: &Composite,
    r: Tensor<5>,
    first: [usize; 3],
    last: [usize; 3],
) -> Tensor<5> {
    propagate_in(net, act, composite, r, Some((first, last)))
}

fn propagate_in(
    net: &UNet,
    act: &Activations,
    composite: &Composite,
    r: Tensor<5>,
    around: Option<([usize; 3], [usize; 3])>,
) -> Tensor<5> {
    let full = grid(act);
    let sites = sites(net, act);
    let windows = windows(net, &sites, around, full);
    walk_whole(act, &windows, r, |r| {
        walk_back(net, act, |k| sites[k].prepare(composite, &windows[k], full), &windows, r)
    })
}

/// [`propagate`] with the layers' rules made beforehand; `r` must be zero outside the plan's
/// box.
pub fn propagate_planned(net: &UNet, act: &Activations, plan: &Plan, r: Tensor<5>) -> Tensor<5> {
    walk_whole(act, &plan.windows, r, |r| walk_back(net, act, |k| plan.rules[k].clone(), &plan.windows, r))
}

/// `walk` from the whole grid's logits `r`, moved to the head's window, to the whole grid's input.
fn walk_whole(
    act: &Activations,
    windows: &[Window],
    r: Tensor<5>,
    walk: impl FnOnce(Tensor<5>) -> Tensor<5>,
) -> Tensor<5> {
    let whole = crate::spatial::crop::whole(grid(act));
    let out = walk(refit(r, &whole, &windows[0]));
    refit(out, windows.last().expect("a layer"), &whole)
}

/// `Lᵀ v` for the map `L` of [`propagate`]: `v` shaped like the network input, the result like
/// the logits. The walk of `propagate` backwards, each step replaced by its transpose: a layer's
/// rule by [`PreparedRule::transpose`], routing to a pooling window's winner by reading the
/// winner, up-sampling's adjoint by up-sampling, a channel split by a concatenation, and the
/// sum at a skip by sending `v` both ways. With a plan made [`Plan::around`] a box, the result
/// is exact inside the box only (zero outside the head's window).
pub fn transpose_planned(net: &UNet, act: &Activations, plan: &Plan, v: Tensor<5>) -> Tensor<5> {
    let cfg = &net.config;
    let full = grid(act);
    let whole = crate::spatial::crop::whole(full);
    let windows = &plan.windows;
    let mut k = plan.rules.len();
    let mut at = *windows.last().expect("a layer");
    let mut next = |v: Tensor<5>, at: &mut Window| {
        k -= 1;
        let v = refit(v, at, &windows[k]);
        *at = windows[k];
        plan.rules[k].transpose(v)
    };
    let mut v = refit(v, &whole, &at);
    let mut skips: Vec<Option<(Tensor<5>, Window)>> = vec![None; cfg.levels];
    for level in 0..cfg.levels {
        if level > 0 && cfg.down == Down::MaxPool {
            let below = crop_tensor(&act.encoder[level - 1].last().expect("≥ 1 block").output, &at, full);
            v = max_gather3d(below, v, [2; 3]);
        }
        for _ in &net.encoder[level] {
            v = next(v, &mut at);
        }
        if level + 1 < cfg.levels {
            skips[level] = Some((v.clone(), at));
        }
    }
    for i in 0..net.decoder.len() {
        let level = cfg.levels - 2 - i;
        let up = &net.ups[i];
        if up.transposed.is_none() {
            v = upsample2(v, up.upsample_mode());
        }
        v = next(v, &mut at);
        let (skip, from) = skips[level].take().expect("a skip per decoder level");
        v = Tensor::cat(vec![refit(skip, &from, &at), v], 1);
        for _ in &net.decoder[i] {
            v = next(v, &mut at);
        }
    }
    let v = next(v, &mut at);
    refit(v, &at, &whole)
}

/// The relevance map for the logit of `class` at `voxel = [d, h, w]` (tensor axes; for NIfTI
/// files that is `[z, y, x]`).
pub fn explain_voxel(
    net: &UNet,
    act: &Activations,
    composite: &Composite,
    class: usize,
    voxel: [usize; 3],
) -> Explanation {
    explain_target(net, act, composite, class, voxel, Target::Logit)
}

/// As [`explain_voxel`], for any [`Target`]; `logit` is then the explained quantity.
pub fn explain_target(
    net: &UNet,
    act: &Activations,
    composite: &Composite,
    class: usize,
    voxel: [usize; 3],
    target: Target,
) -> Explanation {
    let r = start_for(&act.logits, class, voxel, target);
    let logit = r.clone().sum();
    Explanation { relevance: propagate_around(net, act, composite, r, voxel, voxel), logit }
}
