using Thermo.Analysis;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
using Thermo.Trainer.Data;
using Thermo.Trainer.Evaluation;
using Thermo.Trainer.Models;
using Thermo.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Tests;

/// <summary>The graph networks' propagation and attention against hand-worked cases.</summary>
public class GraphTests
{
    // The path 0 — 1 — 2 — 3.
    static readonly float[,] Path4 = { { 0, 1, 0, 0 }, { 1, 0, 1, 0 }, { 0, 1, 0, 1 }, { 0, 0, 1, 0 } };

    [Fact]
    public void Gcn_propagation_is_the_hand_computed_normalised_adjacency()
    {
        // A + I has degrees 2, 3, 3, 2, so Â_ij = 1/√(d_i d_j) on the path and the diagonal.
        double[,] expected = new double[4, 4];
        double[] degree = [2, 3, 3, 2];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                if (i == j || Math.Abs(i - j) == 1) expected[i, j] = 1 / Math.Sqrt(degree[i] * degree[j]);
        using var a = TileGraph.NormalizedAdjacency(Path4);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) Assert.Equal(expected[i, j], a[i, j].item<float>(), 6);

        // One layer with W = identity (1 → 1 feature) and zero bias propagates features by Â: H' = Â H.
        using var layer = new GcnLayer("gcn1", 1, 1);
        using (no_grad()) layer.parameters().First().copy_(ones(1, 1));
        using var h = tensor(new float[] { 1, 2, 3, 4 }).view(1, 4, 1);
        using var output = layer.forward(h, a);
        for (int i = 0; i < 4; i++)
        {
            double sum = 0;
            for (int j = 0; j < 4; j++) sum += expected[i, j] * (j + 1);
            Assert.Equal(sum, output[0, i, 0].item<float>(), 5);
        }
    }

    [Fact]
    public void Gat_attention_rows_sum_to_one_over_each_neighbourhood()
    {
        manual_seed(3);
        using var layer = new GatLayer("gat1", 3, 5, 2);
        using var h = randn(2, 4, 3);
        using var path = tensor(Path4);
        using var allowed = GatLayer.Neighbourhoods(path);
        using var alpha = layer.Attention(h, allowed);
        Assert.Equal([2L, 2, 4, 4], alpha.shape);
        using var rows = alpha.sum(-1);
        Assert.True((rows - 1).abs().max().item<float>() < 1e-6f);
        Assert.Equal(0f, alpha[.., .., 0, 2].abs().max().item<float>());   // 0 and 2 are not neighbours
        Assert.True(alpha[.., .., 0, 1].min().item<float>() > 0);
        using var output = layer.forward(h, allowed);
        Assert.Equal([2L, 4, 10], output.shape);
    }

    /// <summary>
    /// PyTorch Geometric's naming: <c>att_src</c> scores the neighbour j, <c>att_dst</c> the centre i.
    /// With att_src zeroed every score of row i is LeakyReLU(a_dstᵀ W h_i), the same for each j, so
    /// attention is uniform over the neighbourhood; with att_dst zeroed it is not.
    /// </summary>
    [Fact]
    public void Gat_att_src_scores_the_neighbour_and_att_dst_the_centre_as_in_pyg()
    {
        Tensor AttentionWithout(string zeroed)
        {
            manual_seed(5);
            using var layer = new GatLayer("gat1", 3, 5, 2);
            using (no_grad()) layer.named_parameters().Single(p => p.name == zeroed).parameter.zero_();
            using var h = randn(1, 4, 3);
            using var path = tensor(Path4);
            using var allowed = GatLayer.Neighbourhoods(path);
            return layer.Attention(h, allowed);
        }
        Assert.Equal(["weight", "att_dst", "att_src", "bias"], new GatLayer("gat1", 3, 5, 2).named_parameters().Select(p => p.name));
        using var noNeighbourTerm = AttentionWithout("att_src");
        // Node 1 of the path 0–1–2–3 attends to 0, 1 and 2: a third each.
        Assert.True((noNeighbourTerm[.., .., 1, TensorIndex.Slice(0, 3)] - 1f / 3).abs().max().item<float>() < 1e-6f);
        using var noCentreTerm = AttentionWithout("att_dst");
        Assert.True((noCentreTerm[.., .., 1, TensorIndex.Slice(0, 3)] - 1f / 3).abs().max().item<float>() > 1e-3f);
    }

    /// <summary>
    /// A snapshot of a gat run from before the renaming lists the centre's vector first, as att_src:
    /// loading it puts that vector into att_dst, the centre's, and the neighbour's into att_src.
    /// </summary>
    [Fact]
    public void A_pre_rename_gat_snapshot_loads_each_attention_vector_into_its_role()
    {
        manual_seed(7);
        using var model = ModelFactory.Create("gat", 1, 28, 28, 10, null, 0, "tiles");
        var current = model.named_parameters().Select(p => { var (layer, name) = ParameterLoader.SplitName(p.name); return new TensorSnapshot(layer, name, p.parameter.shape.Select(d => (int)d).ToArray(), p.parameter.data<float>().ToArray()); }).ToArray();
        // The old layout: in the same places, the centre's values (registered first) named att_src and
        // the neighbour's named att_dst.
        var old = current.Select(t => t.Tensor switch { "att_dst" => new TensorSnapshot(t.Layer, "att_src", t.Shape, t.Values), "att_src" => new TensorSnapshot(t.Layer, "att_dst", t.Shape, t.Values), _ => t }).ToArray();
        Assert.True(ParameterLoader.IsPreRenameAttention(old.Where(t => t.Layer == "gat1").Select(t => t.Tensor).ToList()));
        Assert.False(ParameterLoader.IsPreRenameAttention(current.Where(t => t.Layer == "gat1").Select(t => t.Tensor).ToList()));
        using var fresh = ModelFactory.Create("gat", 1, 28, 28, 10, null, 0, "tiles");
        ParameterLoader.Load(fresh, new Snapshot(0, 0L, old), "old");
        foreach (var (name, p) in fresh.named_parameters())
        {
            var (layer, tensor) = ParameterLoader.SplitName(name);
            Assert.Equal(current.Single(t => t.Layer == layer && t.Tensor == tensor).Values, p.data<float>().ToArray());
        }
    }

    [Fact]
    public void Mnist_images_become_49_node_graphs_with_symmetric_k_nearest_edges()
    {
        var graph = new TileGraph(28, 28);
        Assert.Equal(49, graph.Nodes);
        for (int i = 0; i < 49; i++)
        {
            Assert.Equal(0f, graph.Adjacency[i, i]);
            for (int j = 0; j < 49; j++) Assert.Equal(graph.Adjacency[i, j], graph.Adjacency[j, i]);
        }
        // an interior node's 8 nearest tiles are its 3×3 neighbourhood
        int centre = 3 * 7 + 3;
        var neighbours = Enumerable.Range(0, 49).Where(j => graph.Adjacency[centre, j] > 0).ToArray();
        Assert.Equal([16, 17, 18, 23, 25, 30, 31, 32], neighbours);
        using var images = zeros(1, 1, 28, 28);
        using (no_grad()) images[0, 0, 0, 0] = tensor(16f);   // one bright pixel in the first 4×4 tile
        using var features = graph.Features(images);
        Assert.Equal([1L, 49, 1], features.shape);
        Assert.Equal(1f, features[0, 0, 0].item<float>());   // its mean intensity
    }

    const long GcnParameters = 1L * 32 + 32 + 32 * 64 + 64 + 2 * (64 * 64 + 64) + 128 * 10 + 10;
    // The paper's Fig. 5: each GATConv(in, out, heads=2) has 2·out·in weights, 2·out source and 2·out
    // target attention vectors and 2·out biases (PyTorch Geometric's count); then 128→32→32→10.
    const long GatParameters = (2 * 32 * 1 + 3 * 64) + (2 * 64 * 64 + 3 * 128) + (2 * 64 * 128 + 3 * 128) + (128 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10);

    [Theory]
    [InlineData("gcn", "tiles", new[] { "gcn1", "gcn2", "gcn3", "gcn4", "fc" }, GcnParameters)]
    [InlineData("gcn", "slic", new[] { "gcn1", "gcn2", "gcn3", "gcn4", "fc" }, GcnParameters)]
    [InlineData("gat", "tiles", new[] { "gat1", "gat2", "gat3", "fc1", "fc2", "fc3" }, GatParameters)]
    [InlineData("gat", "slic", new[] { "gat1", "gat2", "gat3", "fc1", "fc2", "fc3" }, GatParameters)]
    public void Graph_models_have_their_layers_and_parameters_and_no_buffers(string name, string graph, string[] layers, long parameters)
    {
        using var model = ModelFactory.Create(name, 1, 28, 28, 10, null, 0, graph);
        Assert.Equal(layers, model.named_parameters().Select(p => p.name.Split('.')[0]).Distinct());
        Assert.Equal(parameters, model.parameters().Sum(p => p.numel()));
        Assert.Empty(model.named_buffers());
        using var input = graph == "tiles" ? zeros(3, 1, 28, 28) : PaddedGraphs.OfNoise(3, 28, 28, seed: 1);
        using var y = model.forward(input);
        Assert.Equal([3L, 10], y.shape);
    }

    [Fact]
    public void Slic_is_the_default_graph_and_an_unknown_graph_or_colour_images_are_named()
    {
        using var model = ModelFactory.Create("gcn", 1, 28, 28, 10, null, 0);
        using var graphs = PaddedGraphs.OfNoise(2, 28, 28, seed: 1);
        using var y = model.forward(graphs);
        Assert.Equal([2L, 10], y.shape);
        var unknown = Assert.Throws<SettingException>(() => ModelFactory.Create("gat", 1, 28, 28, 10, null, 0, "voronoi"));
        Assert.Equal("Graph", unknown.Setting);
        Assert.Contains("voronoi", unknown.Detail);
        var colour = Assert.Throws<SettingException>(() => ModelFactory.Create("gcn", 3, 32, 32, 10, null, 0, "slic"));
        Assert.Contains("single-channel", colour.Detail);
    }

    /// <summary>SLIC graphs of differently drawn images, so their node counts and degrees differ.</summary>
    static SuperpixelGraph[] VariedGraphs()
    {
        var random = new Random(5);
        var graphs = new List<SuperpixelGraph>();
        foreach (var (size, segments) in new[] { (28, 75), (28, 30), (20, 12), (16, 40) })
        {
            var image = new float[size * size];
            for (int p = 0; p < image.Length; p++) image[p] = (p % size) * (p / size) % 7 < 3 ? random.NextSingle() : 0.9f;
            graphs.Add(SuperpixelGraph.Of(image, size, size, SlicParameters.Paper with { Segments = segments }));
        }
        // and a hand-made path of three nodes, the smallest graph of the batch
        graphs.Add(new SuperpixelGraph([0.2f, 0.5f, 0.8f], [0.1f, 0.5f, 0.9f], [0.5f, 0.5f, 0.5f], [0, 1], [1, 2]));
        return [.. graphs];
    }

    [Theory]
    [InlineData("gcn")]
    [InlineData("gat")]
    public void A_batch_of_graphs_gives_each_graph_what_it_gives_alone(string name)
    {
        var graphs = VariedGraphs();
        Assert.True(graphs.Select(g => g.Nodes).Distinct().Count() == graphs.Length, "the graphs differ in size");
        manual_seed(11);
        using var model = ModelFactory.Create(name, 1, 28, 28, 10, null, 0, "slic");
        model.eval();
        using var noGrad = no_grad();
        using var batch = PaddedGraphs.Pack(graphs);
        using var together = model.forward(batch);
        for (int g = 0; g < graphs.Length; g++)
        {
            using var alone = PaddedGraphs.Pack([graphs[g]]);
            Assert.True(alone.shape[1] == graphs[g].Nodes, "a graph alone is packed without padding");
            using var output = model.forward(alone);
            double difference = (output[0] - together[g]).abs().max().item<float>();
            Assert.True(difference < 1e-6, $"graph {g} ({graphs[g].Nodes} nodes): batched and alone differ by {difference}");
        }
        // and the order of the batch does not matter either
        using var reversed = model.forward(PaddedGraphs.Pack(graphs.Reverse().ToArray()));
        Assert.True((reversed.flip(0) - together).abs().max().item<float>() < 1e-6);
    }

    [Fact]
    public void Padded_graphs_unpack_to_their_features_symmetric_adjacency_and_node_indicator()
    {
        // 0 — 1, 1 — 2, and 0 — 2: a triangle; and a single edge; packed together the second is padded.
        var triangle = new SuperpixelGraph([0.1f, 0.2f, 0.3f], [0, 0, 0], [0, 0, 0], [0, 0, 1], [1, 2, 2]);
        var pair = new SuperpixelGraph([0.7f, 0.9f], [0, 0], [0, 0], [0], [1]);
        using var packed = PaddedGraphs.Pack([triangle, pair]);
        Assert.Equal([2L, 3, 4], packed.shape);   // 3 nodes at most, 2 neighbours at most
        var (features, adjacency, nodes) = PaddedGraphs.Unpack(packed);
        using (features) using (adjacency) using (nodes)
        {
            Assert.Equal(new[] { 0.1f, 0.2f, 0.3f, 0.7f, 0.9f, 0 }, features.flatten().data<float>().ToArray());
            Assert.Equal(new float[] { 0, 1, 1, 1, 0, 1, 1, 1, 0, /* pair */ 0, 1, 0, 1, 0, 0, 0, 0, 0 }, adjacency.flatten().data<float>().ToArray());
            Assert.Equal(new float[] { 1, 1, 1, 1, 1, 0 }, nodes.flatten().data<float>().ToArray());
        }
    }

    [Fact]
    public void A_gcn_run_sees_slic_graphs_records_them_and_is_reevaluated_on_them()
    {
        using var dir = new TempDir();
        var config = new TrainConfig { Model = "gcn", DataDir = TinyData.WriteMnistLike(dir["data"], 96, 40), Epochs = 1, BatchSize = 32, Threads = 1 };
        Assert.Null(config.Graph);
        RunManifest manifest;
        using (var run = TrainingRun.Start(config, dir["run"], dir.Path, new SilentProgress())) manifest = run.Run();
        Assert.Equal("slic", manifest.Config.Graph);
        Assert.Contains("gcn on slic (batch 32)", manifest.SelfCheck!.Cases);
        Assert.Single(Directory.GetDirectories(Path.Combine(dir.Path, "data"), "mnist-slic-*"));

        // The pruning stage rebuilds the model and its test set from the run's files: the same graphs,
        // so the unmasked model reproduces the trainer's final test figures.
        var last = TrainingRun.ReadMetrics(RunLayout.Metrics(dir["run"])).Last();
        using (var tests = new TestSetCache())
        using (var model = RunModel.Open(dir["run"], dir.Path, tests, _ => { }))
        {
            var (loss, accuracy) = model.Evaluate(FilterMask.None("gcn1"));
            Assert.Equal(last.TestLoss, loss, 6);
            Assert.Equal(last.TestAccuracy, accuracy);
        }

        // A run.json written before the graph setting existed records none: its gcn saw the tiling.
        var path = RunManifest.PathIn(dir["run"]);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
        json["config"]!.AsObject().Remove("graph");
        File.WriteAllText(path, json.ToJsonString());
        Assert.Equal("tiles", RunManifest.TryLoad(dir["run"])!.Config.Graph);
        Assert.Null(new TrainConfig { Model = "fourconv" }.AsRecordedByRun("").Graph);
    }

    [Fact]
    public void The_graph_setting_is_validated()
    {
        (new TrainConfig { Model = "gat", Graph = "tiles" }).Validate();
        var unknown = Assert.Throws<SettingException>(() => (new TrainConfig { Model = "gcn", Graph = "voronoi" }).Validate());
        Assert.Equal(nameof(TrainConfig.Graph), unknown.Setting);
        Assert.Contains("known: slic, tiles", unknown.Detail);
        var notAGraphModel = Assert.Throws<SettingException>(() => (new TrainConfig { Model = "fourconv", Graph = "slic" }).Validate());
        Assert.Contains("only gcn and gat", notAGraphModel.Detail);
        Assert.Equal("slic", new TrainConfig { Model = "gat" }.ResolvedGraph);
        Assert.Null(new TrainConfig { Model = "lenet" }.ResolvedGraph);
    }

    [Theory]
    [InlineData("gcn")]
    [InlineData("gat")]
    public void The_native_self_check_of_a_graph_model_on_slic_passes(string name)
    {
        // Guards the check's own input: with intensities of one sign, gat1's centre-attention (att_dst) gradient is
        // zero in float64 and rounding noise in float32, which the check would take for a faulty kernel.
        var report = Thermo.Trainer.Native.NumericsSelfCheck.Run(Thermo.Trainer.Native.NumericsSelfCheck.ModelCases(name, 1, 28, 28, 10, null, 16).Take(1), repeats: 1);
        Assert.True(report.Passed, string.Join("; ", report.Failures));
        Assert.Equal($"{name} on slic (batch 16)", Assert.Single(report.Cases));
    }
}
