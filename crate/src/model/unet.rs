//! This project's U-Net family (`crate::unet`) as a [`Graph`], node names as its parameter
//! names (`encoder.0.0.conv`, `ups.1`, `head`), so that composites and custom rules address
//! the same layers on either engine.

use burn::nn::conv::{Conv3d, ConvTranspose3d};

use super::graph::{ConvSpec, Graph, Node, NormSpec, Op, Statistics};
use crate::unet::{Activation, Block, Down, NormKind, UNet, Up};

fn conv(c: &Conv3d) -> ConvSpec {
    ConvSpec {
        weight: c.weight.val(),
        bias: c.bias.as_ref().map(|b| b.val()),
        stride: c.stride,
        padding: crate::conv::conv_padding(c),
        output_padding: [0; 3],
        transposed: false,
    }
}

fn transposed(c: &ConvTranspose3d) -> ConvSpec {
    ConvSpec {
        weight: c.weight.val(),
        bias: c.bias.as_ref().map(|b| b.val()),
        stride: c.stride,
        padding: c.padding,
        output_padding: c.padding_out,
        transposed: true,
    }
}

struct Builder {
    nodes: Vec<Node>,
}

impl Builder {
    fn push(&mut self, name: String, op: Op, inputs: Vec<usize>) -> usize {
        self.nodes.push(Node { name, op, inputs });
        self.nodes.len() - 1
    }

    fn block(&mut self, prefix: String, b: &Block, x: usize) -> usize {
        let mut h = self.push(format!("{prefix}.conv"), Op::Conv(conv(&b.conv)), vec![x]);
        if let Some(n) = &b.norm {
            let statistics = match n.kind {
                NormKind::Instance => Statistics::Instance,
                _ => Statistics::Running { mean: n.running_mean.val(), var: n.running_var.val() },
            };
            let spec = NormSpec {
                statistics,
                weight: Some(n.weight.val()),
                bias: Some(n.bias.val()),
                eps: n.eps,
                channels: n.weight.val().dims()[0],
            };
            h = self.push(format!("{prefix}.norm"), Op::Norm(spec), vec![h]);
        }
        let act = match b.activation {
            Activation::Relu => Op::Relu,
            Activation::LeakyRelu => Op::LeakyRelu(0.01),
        };
        self.push(format!("{prefix}.act"), act, vec![h])
    }
}

/// The U-Net as a graph: the same forward pass, node by node.
pub fn graph(net: &UNet) -> Graph {
    let cfg = &net.config;
    let mut b = Builder { nodes: vec![Node { name: "input".into(), op: Op::Input, inputs: vec![] }] };
    let mut h = 0;
    let mut skips = Vec::new();
    for (l, blocks) in net.encoder.iter().enumerate() {
        if l > 0 && cfg.down == Down::MaxPool {
            h = b.push(format!("encoder.{l}.pool"), Op::MaxPool([2; 3]), vec![h]);
        }
        for (i, block) in blocks.iter().enumerate() {
            h = b.block(format!("encoder.{l}.{i}"), block, h);
        }
        skips.push(h);
    }
    skips.pop();
    for (i, (up, blocks)) in net.ups.iter().zip(&net.decoder).enumerate() {
        h = match (&up.transposed, &up.conv) {
            (Some(t), _) => b.push(format!("ups.{i}"), Op::Conv(transposed(t)), vec![h]),
            (None, Some(c)) => {
                let mode = if up.mode == Up::Trilinear {
                    crate::upsample::Mode::Trilinear
                } else {
                    crate::upsample::Mode::Nearest
                };
                let u = b.push(format!("ups.{i}.up"), Op::Upsample(mode), vec![h]);
                b.push(format!("ups.{i}"), Op::Conv(conv(c)), vec![u])
            }
            _ => unreachable!("an up layer has a transposed conv or an up-sampling conv"),
        };
        let skip = skips.pop().expect("one skip per level");
        h = b.push(format!("decoder.{i}.cat"), Op::Concat, vec![skip, h]);
        for (j, block) in blocks.iter().enumerate() {
            h = b.block(format!("decoder.{i}.{j}"), block, h);
        }
    }
    let output = b.push("head".into(), Op::Conv(conv(&net.head)), vec![h]);
    Graph { nodes: b.nodes, output, in_channels: cfg.in_channels, classes: cfg.classes }
}

impl From<&UNet> for Graph {
    fn from(net: &UNet) -> Graph {
        graph(net)
    }
}
