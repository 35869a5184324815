// The names the page shares with the engine, from its one source (web.rs `catalogue()`):
// sequences, classes, LRP composites, regions, file roles, the cohort plot's axis order and the
// demo cohort's size. The worker sends them with its `ready` message; every menu, panel, plot
// axis and CSV column of the page is built from them.

export const names = {
  sequences: [],
  plotOrder: [],
  classes: [],
  /** The first is the menu's default. */
  composites: [],
  /** `[{name, label, needs}]`: `needs` is null, 'label' or 'drawing'. */
  scopes: [],
  roles: [],
  demoPatients: 0,
};

/** Takes the engine's catalogue (as web.rs sends it). */
export function setNames(c) {
  Object.assign(names, {
    sequences: c.sequences,
    plotOrder: c.plot_order,
    classes: c.classes,
    composites: c.composites,
    scopes: c.scopes,
    roles: c.roles,
    demoPatients: c.demo_patients,
  });
}
