//! The nnU-Net 3d_fullres-shaped network of the benchmarks, as nnU-Net plans it for a CT task:
//! PlainConvUNet, 6 stages of 32→320 features, two conv–instance norm–leaky ReLU blocks per
//! stage, strided-conv down-sampling, transposed-conv up-sampling, 1 channel, 2 classes, random
//! (kaiming-scaled) weights. Shared by `benches/nnunet.rs` and `benches/gpu.rs`.

use burn::prelude::*;
use burn::tensor::TensorData;
use seglrp::model::graph::{ConvSpec, Graph, Node, NormSpec, Op, Statistics};
use seglrp::rng::SplitMix;

pub const FEATURES: [usize; 6] = [32, 64, 128, 256, 320, 320];

struct Builder<'a> {
    nodes: Vec<Node>,
    rng: SplitMix,
    device: &'a Device,
}

impl Builder<'_> {
    fn push(&mut self, name: String, op: Op, inputs: Vec<usize>) -> usize {
        self.nodes.push(Node { name, op, inputs });
        self.nodes.len() - 1
    }

    fn random(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.rng.normal() * scale).collect()
    }

    /// Conv (kaiming-scaled weights), instance norm (affine), leaky ReLU.
    fn block(&mut self, name: &str, x: usize, cin: usize, cout: usize, stride: usize) -> usize {
        let fan_in = cin * 27;
        let w = self.random(cout * fan_in, (2.0 / fan_in as f32).sqrt());
        let weight = Tensor::from_data(TensorData::new(w, [cout, cin, 3, 3, 3]), self.device);
        let bias = Some(Tensor::from_data(TensorData::new(self.random(cout, 0.1), [cout]), self.device));
        let spec =
            ConvSpec { weight, bias, stride: [stride; 3], padding: [1; 3], output_padding: [0; 3], transposed: false };
        let c = self.push(format!("{name}.conv"), Op::Conv(spec), vec![x]);
        let gamma: Vec<f32> = self.random(cout, 0.2).into_iter().map(|v| 1.0 + v).collect();
        let norm = NormSpec {
            statistics: Statistics::Instance,
            weight: Some(Tensor::from_data(TensorData::new(gamma, [cout]), self.device)),
            bias: Some(Tensor::from_data(TensorData::new(self.random(cout, 0.1), [cout]), self.device)),
            eps: 1e-5,
            channels: cout,
        };
        let n = self.push(format!("{name}.norm"), Op::Norm(norm), vec![c]);
        self.push(format!("{name}.nonlin"), Op::LeakyRelu(0.01), vec![n])
    }
}

pub fn network(device: &Device) -> Graph {
    let mut b = Builder { nodes: vec![], rng: SplitMix::new(11), device };
    b.push("input".into(), Op::Input, vec![]);
    let mut h = 0;
    let mut cin = 1;
    let mut skips = Vec::new();
    for (s, &f) in FEATURES.iter().enumerate() {
        h = b.block(&format!("encoder.stages.{s}.0"), h, cin, f, if s == 0 { 1 } else { 2 });
        h = b.block(&format!("encoder.stages.{s}.1"), h, f, f, 1);
        skips.push(h);
        cin = f;
    }
    skips.pop();
    for s in (0..FEATURES.len() - 1).rev() {
        let (fin, f) = (FEATURES[s + 1], FEATURES[s]);
        let w = b.random(fin * f * 8, (1.0 / (fin * 8) as f32).sqrt());
        let weight = Tensor::from_data(TensorData::new(w, [fin, f, 2, 2, 2]), device);
        let spec =
            ConvSpec { weight, bias: None, stride: [2; 3], padding: [0; 3], output_padding: [0; 3], transposed: true };
        let up = b.push(format!("decoder.transpconvs.{s}"), Op::Conv(spec), vec![h]);
        let skip = skips.pop().expect("a skip per stage");
        let cat = b.push(format!("decoder.cat.{s}"), Op::Concat, vec![up, skip]);
        h = b.block(&format!("decoder.stages.{s}.0"), cat, 2 * f, f, 1);
        h = b.block(&format!("decoder.stages.{s}.1"), h, f, f, 1);
    }
    let w = b.random(2 * FEATURES[0], (1.0 / FEATURES[0] as f32).sqrt());
    let weight = Tensor::from_data(TensorData::new(w, [2, FEATURES[0], 1, 1, 1]), device);
    let spec =
        ConvSpec { weight, bias: None, stride: [1; 3], padding: [0; 3], output_padding: [0; 3], transposed: false };
    let head = b.push("decoder.seg_layers.4".into(), Op::Conv(spec), vec![h]);
    Graph::from_nodes(b.nodes, head, 1).expect("a valid network")
}
