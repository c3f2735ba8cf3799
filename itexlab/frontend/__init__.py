"""Model intake: TensorFlow behind one boundary module (`tfgraph`): Keras models, .keras files,
SavedModels and GraphDefs to the neutral graph and back, and running graphs on stock TF.
May import: ir."""
