// The names the page shares with the engine, from its one source (web.rs `catalogue()`): the
// loaded model's channels and classes and its card, LRP composites, regions, file roles, the
// cohort plot's axis order and the demo cohort's size. The worker sends them with its `ready`
// message and after each model change; every menu, panel, plot axis and CSV column of the
// page is built from them.

export const names = {
  /** The model's input channels, in its order (the six MRI sequences of the liver model). */
  sequences: [],
  plotOrder: [],
  classes: [],
  /** The class choice that explains each foreground voxel for its own class (models of more than two classes), or null. */
  allForeground: null,
  /** The first is the menu's default. */
  composites: [],
  /** Attribution methods beside the composites (the faithfulness panel): gradient, …, random. */
  methods: [],
  /** `[{name, label, needs}]`: `needs` is null, 'label' or 'drawing'. */
  scopes: [],
  roles: [],
  demoPatients: 0,
  /** The normalisation schemes every channel can be set to (`--normalisation`'s names). */
  normalisations: [],
  /** `{name, card, liver, normalisation, unstated}`: `liver` when the demo patients and their cohort apply. */
  model: null,
};

/** Takes the engine's catalogue (as web.rs sends it). */
export function setNames(c) {
  Object.assign(names, {
    sequences: c.sequences,
    plotOrder: c.plot_order,
    classes: c.classes,
    allForeground: c.all_foreground ?? null,
    composites: c.composites,
    methods: c.methods ?? [],
    scopes: c.scopes,
    roles: c.roles,
    demoPatients: c.demo_patients,
    normalisations: c.normalisations ?? [],
    model: c.model ?? null,
  });
}

/** A class index's name; `null` is the all-foreground choice. */
export const className = (c) => (c == null ? names.allForeground : (names.classes[c] ?? `class ${c}`));

/** The class explained by default: the last of a two-class model (its foreground), else 1. */
export const defaultClass = () => Math.min(1, names.classes.length - 1);
