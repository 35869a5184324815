//! A patient's upper-abdominal anatomy as geometry in millimetres (RAS+: x towards the
//! patient's right, where the liver is, y anterior, z superior), drawn
//! from a seed. Nothing here knows about voxels: [`Patient::tissue`] answers for any point, so
//! the same patient can be imaged on any grid (the demo's volumes, training patches).

use crate::rng::SplitMix;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tissue {
    Air,
    Fat,
    Muscle,
    Liver,
    /// Portal vein and its branches.
    PortalVein,
    /// Hepatic veins and the inferior vena cava.
    HepaticVein,
    Aorta,
    Bone,
    Csf,
    Kidney,
    Spleen,
    /// Fluid-filled bowel and stomach.
    Bowel,
    Gas,
    /// A lesion, by index into [`Patient::lesions`].
    Lesion(usize),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LesionKind {
    /// Hypervascular (HCC-like): arterial enhancement, portal/transitional washout,
    /// hypointense in the hepatobiliary phase. A tumour.
    Hypervascular,
    /// Hypovascular (metastasis-like): rim enhancement, dark core, hypointense in the
    /// hepatobiliary phase. A tumour.
    Hypovascular,
    /// Simple cyst: bright on T2, never enhancing. Not a tumour (a distractor).
    Cyst,
}

impl LesionKind {
    pub fn is_tumour(self) -> bool {
        self != LesionKind::Cyst
    }
}

#[derive(Clone, Debug)]
pub struct Lesion {
    pub kind: LesionKind,
    pub centre: [f32; 3],
    /// Semi-axes (mm) before lobulation.
    pub radii: [f32; 3],
    /// Lobulation: amplitude and phases of a low-order angular ripple of the surface.
    lobes: (f32, [f32; 3]),
    /// Multiplies the kind's intensities, per sequence (lesions differ from one another).
    pub gain: [f32; 6],
}

impl Lesion {
    /// Diameter (mm) of the sphere of the same volume.
    pub fn diameter(&self) -> f32 {
        2.0 * (self.radii[0] * self.radii[1] * self.radii[2]).cbrt()
    }

    /// Normalised radius of `p`: < 1 inside; ≥ 1 outside.
    pub fn rho(&self, p: [f32; 3]) -> f32 {
        let d = [p[0] - self.centre[0], p[1] - self.centre[1], p[2] - self.centre[2]];
        let e = (0..3).map(|i| (d[i] / self.radii[i]).powi(2)).sum::<f32>().sqrt();
        if e > 1.5 {
            return e;
        }
        let len = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt().max(1e-6);
        let (a, ph) = self.lobes;
        let ripple =
            (3.0 * d[0] / len + ph[0]).sin() * (2.0 * d[1] / len + ph[1]).sin() + (2.0 * d[2] / len + ph[2]).sin();
        e / (1.0 + a * ripple)
    }
}

/// A capsule (line segment with a radius): one piece of a vessel tree.
#[derive(Clone, Debug)]
struct Segment {
    a: [f32; 3],
    b: [f32; 3],
    radius: f32,
    kind: Tissue,
}

impl Segment {
    fn contains(&self, p: [f32; 3]) -> bool {
        let ab = sub(self.b, self.a);
        let ap = sub(p, self.a);
        let t = (dot(ap, ab) / dot(ab, ab).max(1e-9)).clamp(0.0, 1.0);
        let q = [self.a[0] + t * ab[0], self.a[1] + t * ab[1], self.a[2] + t * ab[2]];
        let d = sub(p, q);
        dot(d, d) <= self.radius * self.radius
    }
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// An axis-aligned ellipsoid: `centre`, semi-axes.
#[derive(Clone, Copy, Debug)]
struct Ellipsoid([f32; 3], [f32; 3]);

impl Ellipsoid {
    fn e(&self, p: [f32; 3]) -> f32 {
        (0..3).map(|i| ((p[i] - self.0[i]) / self.1[i]).powi(2)).sum()
    }
}

#[derive(Clone, Debug)]
pub struct Patient {
    /// Body semi-axes (mm), left-right and antero-posterior.
    body: [f32; 2],
    fat: f32,
    /// Right lobe, left lobe, caudate lobe.
    liver: [Ellipsoid; 3],
    /// Low-frequency surface ripple of the liver: (wave vector, phase).
    liver_ripple: Vec<([f32; 3], f32)>,
    /// Parenchymal texture of the liver.
    pub texture: Vec<([f32; 3], f32)>,
    kidneys: [Ellipsoid; 2],
    spleen: Ellipsoid,
    bowel: Vec<(Ellipsoid, bool)>,
    vessels: Vec<Segment>,
    pub lesions: Vec<Lesion>,
    /// Superior-inferior centre of the liver (mm); imaging grids centre on it.
    pub liver_z: f32,
}

fn uniform(rng: &mut SplitMix, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.uniform()
}

fn ripples(rng: &mut SplitMix, n: usize, wavelength: f32) -> Vec<([f32; 3], f32)> {
    (0..n)
        .map(|_| {
            let d = [rng.normal(), rng.normal(), rng.normal()];
            let len = dot(d, d).sqrt().max(1e-3);
            let k = std::f32::consts::TAU / (wavelength * uniform(rng, 0.7, 1.3));
            ([d[0] / len * k, d[1] / len * k, d[2] / len * k], uniform(rng, 0.0, std::f32::consts::TAU))
        })
        .collect()
}

impl Patient {
    /// A new patient; `seed` fixes everything (anatomy, lesions, their appearance).
    pub fn new(seed: u64) -> Patient {
        let mut rng = SplitMix::new(seed ^ 0x5EED_AB0D);
        let r = &mut rng;
        let body = [uniform(r, 145.0, 170.0), uniform(r, 105.0, 125.0)];
        let fat = uniform(r, 8.0, 28.0);
        let liver_z = 0.0;
        let s = uniform(r, 0.85, 1.1);
        let liver = [
            Ellipsoid([uniform(r, 45.0, 60.0), uniform(r, -10.0, 5.0), liver_z], [75.0 * s, 75.0 * s, 85.0 * s]),
            Ellipsoid(
                [uniform(r, -25.0, -5.0), uniform(r, 25.0, 45.0), liver_z + 25.0],
                [uniform(r, 50.0, 70.0) * s, 30.0 * s, 45.0 * s],
            ),
            Ellipsoid([10.0, -25.0, liver_z + 10.0], [25.0 * s, 20.0 * s, 40.0 * s]),
        ];
        let liver_ripple = ripples(r, 4, 90.0);
        let texture = ripples(r, 4, 25.0);
        let kz = liver_z - uniform(r, 60.0, 80.0);
        let kidneys = [
            Ellipsoid([uniform(r, 60.0, 75.0), -55.0, kz], [30.0, 24.0, 55.0]),
            Ellipsoid([-uniform(r, 60.0, 75.0), -55.0, kz + uniform(r, 0.0, 20.0)], [30.0, 24.0, 55.0]),
        ];
        let spleen = Ellipsoid(
            [-uniform(r, 80.0, 95.0), -30.0, liver_z + uniform(r, -10.0, 15.0)],
            [uniform(r, 25.0, 35.0), 50.0, 50.0],
        );
        let mut bowel = vec![(
            Ellipsoid([-uniform(r, 35.0, 60.0), uniform(r, 20.0, 40.0), liver_z + 20.0], [45.0, 35.0, 40.0]),
            r.uniform() < 0.3,
        )];
        for _ in 0..(4 + (r.uniform() * 4.0) as usize) {
            let c = [uniform(r, -90.0, 60.0), uniform(r, -10.0, 80.0), liver_z - uniform(r, 30.0, 120.0)];
            let rad = uniform(r, 10.0, 22.0);
            bowel.push((
                Ellipsoid(c, [rad * uniform(r, 0.8, 2.0), rad, rad * uniform(r, 0.8, 1.6)]),
                r.uniform() < 0.35,
            ));
        }
        let mut p = Patient {
            body,
            fat,
            liver,
            liver_ripple,
            texture,
            kidneys,
            spleen,
            bowel,
            vessels: Vec::new(),
            lesions: Vec::new(),
            liver_z,
        };
        p.vessels = p.vessel_trees(r);
        p.lesions = p.place_lesions(r);
        p
    }

    /// Liver implicit function: < 1 inside.
    pub fn liver_f(&self, p: [f32; 3]) -> f32 {
        // Smooth union of the lobes (log-sum-exp), so that they merge without creases.
        let k = 8.0;
        let m: f32 = self.liver.iter().map(|e| (-k * e.e(p)).exp()).sum();
        let f = -m.max(1e-30).ln() / k;
        let ripple: f32 = self.liver_ripple.iter().map(|(w, ph)| (dot(*w, p) + ph).sin()).sum();
        f + 0.06 * ripple
    }

    fn vessel_trees(&self, r: &mut SplitMix) -> Vec<Segment> {
        let mut v = Vec::new();
        let hilum = [self.liver[0].0[0] - 30.0, self.liver[0].0[1] - 10.0, self.liver_z - 15.0];
        // Main portal vein from below, then three generations of branches.
        v.push(Segment { a: [5.0, -15.0, self.liver_z - 90.0], b: hilum, radius: 7.0, kind: Tissue::PortalVein });
        let mut tips = vec![(hilum, [1.0f32, 0.2, 0.2], 6.0f32)];
        for generation in 0..3 {
            let mut next = Vec::new();
            for (start, dir, radius) in tips {
                let n = if generation == 0 { 3 } else { 2 };
                for _ in 0..n {
                    let mut d = [dir[0] + 0.8 * r.normal(), dir[1] + 0.8 * r.normal(), dir[2] + 0.6 * r.normal()];
                    if generation == 0 && v.len() == 1 {
                        d = [-1.0, 0.6, 0.3]; // the left portal branch
                    }
                    let len = dot(d, d).sqrt().max(1e-3);
                    let d = [d[0] / len, d[1] / len, d[2] / len];
                    let l = uniform(r, 30.0, 55.0) * (1.0 - 0.25 * generation as f32);
                    let end = [start[0] + l * d[0], start[1] + l * d[1], start[2] + l * d[2]];
                    v.push(Segment { a: start, b: end, radius, kind: Tissue::PortalVein });
                    next.push((end, d, radius * 0.65));
                }
            }
            tips = next;
        }
        // Inferior vena cava behind the liver, and three hepatic veins fanning out from it.
        let ivc = [self.liver[2].0[0] + 12.0, self.liver[2].0[1] - 12.0];
        v.push(Segment {
            a: [ivc[0], ivc[1], -400.0],
            b: [ivc[0], ivc[1], 400.0],
            radius: uniform(r, 10.0, 13.0),
            kind: Tissue::HepaticVein,
        });
        let top = [ivc[0], ivc[1], self.liver_z + 55.0];
        for dir in [[1.0f32, 0.5, -0.25], [0.3, 1.0, -0.3], [-0.8, 0.8, -0.2]] {
            let l = uniform(r, 45.0, 70.0);
            let len = dot(dir, dir).sqrt();
            let mid = [top[0] + l * dir[0] / len, top[1] + l * dir[1] / len, top[2] + l * dir[2] / len];
            let end =
                [mid[0] + 0.6 * l * dir[0] / len + 10.0 * r.normal(), mid[1] + 0.6 * l * dir[1] / len, mid[2] - 15.0];
            v.push(Segment { a: top, b: mid, radius: 5.0, kind: Tissue::HepaticVein });
            v.push(Segment { a: mid, b: end, radius: 3.0, kind: Tissue::HepaticVein });
        }
        // Aorta, left of the spine.
        v.push(Segment {
            a: [-18.0, -45.0, -400.0],
            b: [-18.0, -45.0, 400.0],
            radius: uniform(r, 9.0, 12.0),
            kind: Tissue::Aorta,
        });
        v
    }

    fn place_lesions(&self, r: &mut SplitMix) -> Vec<Lesion> {
        let tumours = if r.uniform() < 0.1 { 0 } else { 1 + (r.uniform() * 4.0) as usize };
        let cysts = (r.uniform() * 4.0) as usize;
        let mut lesions: Vec<Lesion> = Vec::new();
        for i in 0..tumours + cysts {
            let kind = if i >= tumours {
                LesionKind::Cyst
            } else if r.uniform() < 0.5 {
                LesionKind::Hypervascular
            } else {
                LesionKind::Hypovascular
            };
            let diameter = match kind {
                LesionKind::Cyst => uniform(r, 5.0, 25.0),
                _ if r.uniform() < 0.25 => uniform(r, 3.0, 10.0),
                _ => (uniform(r, 10f32.ln(), 40f32.ln())).exp(),
            };
            let rad = diameter / 2.0;
            let radii = [rad * uniform(r, 0.85, 1.15), rad * uniform(r, 0.85, 1.15), rad * uniform(r, 0.85, 1.15)];
            // Deep enough inside the liver, away from the other lesions.
            for _ in 0..200 {
                let c = self.liver[if r.uniform() < 0.75 { 0 } else { 1 }];
                let h = &mut *r;
                let centre =
                    [c.0[0] + h.symmetric(c.1[0]), c.0[1] + h.symmetric(c.1[1]), c.0[2] + h.symmetric(c.1[2] * 0.8)];
                let clear = lesions.iter().all(|o| {
                    let d = sub(o.centre, centre);
                    dot(d, d).sqrt() > o.diameter() / 2.0 + rad + 4.0
                });
                if self.liver_f(centre) < 0.55 && clear {
                    let gain = std::array::from_fn(|_| (1.0 + 0.12 * h.normal()).clamp(0.7, 1.3));
                    let lobes = (
                        if kind == LesionKind::Cyst { 0.03 } else { uniform(h, 0.05, 0.15) },
                        [h.uniform() * 6.3, h.uniform() * 6.3, h.uniform() * 6.3],
                    );
                    lesions.push(Lesion { kind, centre, radii, lobes, gain });
                    break;
                }
            }
        }
        lesions
    }

    /// What is at `p` (mm). Lesions inside the liver win over vessels, vessels over organs.
    pub fn tissue(&self, p: [f32; 3]) -> Tissue {
        let [x, y, _] = p;
        let [a, b] = self.body;
        // Flatter back than belly.
        let yb = if y < 0.0 { b * 0.85 } else { b };
        let body = (x / a).powi(2) + (y / yb).powi(2);
        if body > 1.0 {
            return Tissue::Air;
        }
        let depth = (1.0 - body.sqrt()) * a.min(yb);
        if depth < self.fat {
            return Tissue::Fat;
        }
        // Spine: vertebral body, canal, paraspinal muscles.
        let spine_y = -yb * 0.85 + 40.0;
        let d2 = |cx: f32, cy: f32| (x - cx).powi(2) + (y - cy).powi(2);
        if d2(0.0, spine_y) < 20.0f32.powi(2) {
            return Tissue::Bone;
        }
        if d2(0.0, spine_y - 27.0) < 8.0f32.powi(2) {
            return Tissue::Csf;
        }
        if ((x.abs() - 35.0) / 28.0).powi(2) + ((y - spine_y + 30.0) / 20.0).powi(2) < 1.0 {
            return Tissue::Muscle;
        }
        if depth < self.fat + 9.0 && y > -yb * 0.3 {
            return Tissue::Muscle; // abdominal wall
        }
        let liver = self.liver_f(p) < 1.0;
        if liver {
            for (i, l) in self.lesions.iter().enumerate() {
                if l.rho(p) < 1.0 {
                    return Tissue::Lesion(i);
                }
            }
        }
        for s in &self.vessels {
            if s.contains(p) && (liver || s.kind != Tissue::PortalVein || s.radius >= 6.5) {
                return s.kind;
            }
        }
        if liver {
            return Tissue::Liver;
        }
        if self.kidneys.iter().any(|k| k.e(p) < 1.0) {
            return Tissue::Kidney;
        }
        if self.spleen.e(p) < 1.0 {
            return Tissue::Spleen;
        }
        for (e, gas) in &self.bowel {
            let v = e.e(p);
            if v < 1.0 {
                return if *gas && v < 0.6 { Tissue::Gas } else { Tissue::Bowel };
            }
        }
        if ((x.abs() - 35.0) / 18.0).powi(2) + ((y - spine_y - 10.0) / 18.0).powi(2) < 1.0 && p[2] < self.liver_z - 40.0
        {
            return Tissue::Muscle; // psoas
        }
        Tissue::Fat
    }
}
