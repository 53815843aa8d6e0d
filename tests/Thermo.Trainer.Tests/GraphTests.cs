using Thermo.Trainer.Models;
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
        using var layer = new GcnLayer("gcn1", 1, 1, Path4);
        using (no_grad()) layer.parameters().First().copy_(ones(1, 1));
        using var h = tensor(new float[] { 1, 2, 3, 4 }).view(1, 4, 1);
        using var output = layer.forward(h);
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
        using var layer = new GatLayer("gat1", 3, 5, 2, Path4);
        using var h = randn(2, 4, 3);
        using var alpha = layer.Attention(h);
        Assert.Equal([2L, 2, 4, 4], alpha.shape);
        using var rows = alpha.sum(-1);
        Assert.True((rows - 1).abs().max().item<float>() < 1e-6f);
        Assert.Equal(0f, alpha[.., .., 0, 2].abs().max().item<float>());   // 0 and 2 are not neighbours
        Assert.True(alpha[.., .., 0, 1].min().item<float>() > 0);
        using var output = layer.forward(h);
        Assert.Equal([2L, 4, 10], output.shape);
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

    [Theory]
    [InlineData("gcn", new[] { "gcn1", "gcn2", "gcn3", "gcn4", "fc" }, 1L * 32 + 32 + 32 * 64 + 64 + 2 * (64 * 64 + 64) + 128 * 10 + 10)]
    // The paper's Fig. 5: each GATConv(in, out, heads=2) has 2·out·in weights, 2·out source and 2·out
    // target attention vectors and 2·out biases (PyTorch Geometric's count); then 128→32→32→10.
    [InlineData("gat", new[] { "gat1", "gat2", "gat3", "fc1", "fc2", "fc3" },
        (2 * 32 * 1 + 3 * 64) + (2 * 64 * 64 + 3 * 128) + (2 * 64 * 128 + 3 * 128) + (128 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10))]
    public void Graph_models_have_their_layers_and_parameters_and_no_buffers(string name, string[] layers, long parameters)
    {
        using var model = ModelFactory.Create(name, 1, 28, 28, 10, null, 0);
        Assert.Equal(layers, model.named_parameters().Select(p => p.name.Split('.')[0]).Distinct());
        Assert.Equal(parameters, model.parameters().Sum(p => p.numel()));
        Assert.Empty(model.named_buffers());
        using var y = model.forward(zeros(3, 1, 28, 28));
        Assert.Equal([3L, 10], y.shape);
    }
}
