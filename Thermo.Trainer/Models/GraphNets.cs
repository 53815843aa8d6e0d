using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Thermo.Trainer.Models;

/// <summary>
/// The superpixel graph the graph networks see an image as. Construction (fixed, so it is built once
/// per model and every image shares it): the image is cut into square tiles of <c>tile</c>×<c>tile</c>
/// pixels (MNIST: 4×4 tiles, a 7×7 grid of 49 nodes); a node's features are its tile's mean intensity
/// per channel; each node is joined to its <c>k</c> nearest nodes by the distance between tile centroids
/// (ties broken by node index), and the edges are made symmetric. The graph-network paper uses SLIC
/// superpixels; a fixed tiling keeps every image's graph the same, so a batch is one dense tensor.
/// </summary>
public sealed class TileGraph
{
    public int Nodes { get; }
    /// <summary>Symmetric 0/1 adjacency without self loops, [N, N].</summary>
    public float[,] Adjacency { get; }
    readonly int tile;

    public TileGraph(int height, int width, int tile = 4, int k = 8)
    {
        if (height % tile != 0 || width % tile != 0) throw new ThermoException($"graph models tile images into {tile}×{tile} superpixels; {height}×{width} is not a multiple");
        this.tile = tile;
        int rows = height / tile, columns = width / tile;
        Nodes = rows * columns;
        Adjacency = new float[Nodes, Nodes];
        for (int i = 0; i < Nodes; i++)
        {
            var nearest = Enumerable.Range(0, Nodes).Where(j => j != i)
                .OrderBy(j => Math.Pow(i / columns - j / columns, 2) + Math.Pow(i % columns - j % columns, 2)).ThenBy(j => j).Take(k);
            foreach (var j in nearest) Adjacency[i, j] = Adjacency[j, i] = 1;
        }
    }

    /// <summary>Node features of a batch of images: [B, C, H, W] → [B, N, C] (mean intensity of each tile).</summary>
    public Tensor Features(Tensor images) =>
        functional.avg_pool2d(images, tile).flatten(2).transpose(1, 2);

    /// <summary>GCN's symmetric normalisation D^−½ (A + I) D^−½ of an adjacency matrix.</summary>
    public static Tensor NormalizedAdjacency(float[,] adjacency)
    {
        int n = adjacency.GetLength(0);
        using var a = tensor(adjacency) + eye(n);
        using var d = a.sum(1).pow(-0.5);
        return d.unsqueeze(1) * a * d.unsqueeze(0);
    }
}

/// <summary>A tensor a module uses but does not own as a parameter or buffer: TorchSharp registers every
/// Tensor field as a buffer (which would put the graph into every snapshot), not one held in here.</summary>
sealed class GraphConstant(Tensor value)
{
    public Tensor Value { get; } = value;

    /// <summary>The tensor on <paramref name="device"/>: itself when it is there already (no wrapper a dispose scope could free).</summary>
    public Tensor On(Device device) => Value.device == device ? Value : Value.to(device);

    /// <summary>As <see cref="On"/>, and also in <paramref name="like"/>'s element type (the float64
    /// reference pass of the native self-check).</summary>
    public Tensor Like(Tensor like) => Value.device == like.device && Value.dtype == like.dtype ? Value : Value.to(like.dtype, like.device);
}

/// <summary>A graph convolution (Kipf and Welling): H' = Â H Wᵀ + b with Â = D^−½ (A + I) D^−½. Its
/// weight is [out, in], so a snapshot's units are the rows (one per output feature).</summary>
public sealed class GcnLayer : Module<Tensor, Tensor>
{
    private readonly Parameter weight, bias;
    private readonly GraphConstant propagation;

    public GcnLayer(string name, int inputs, int outputs, float[,] adjacency) : base(name)
    {
        weight = Parameter(empty(outputs, inputs));
        bias = Parameter(zeros(outputs));
        init.xavier_uniform_(weight);
        propagation = new GraphConstant(TileGraph.NormalizedAdjacency(adjacency));
        RegisterComponents();
    }

    public override Tensor forward(Tensor h) => matmul(propagation.Like(h), matmul(h, weight.t())) + bias;
}

/// <summary>A graph attention convolution (Veličković et al.) with <c>heads</c> heads concatenated:
/// e_ij = LeakyReLU(a_srcᵀ W h_i + a_dstᵀ W h_j) over j ∈ N(i) ∪ {i}, α = softmax_j e, h_i' = Σ_j α_ij W h_j.</summary>
public sealed class GatLayer : Module<Tensor, Tensor>
{
    private readonly Parameter weight, att_src, att_dst, bias;
    private readonly GraphConstant mask;
    private readonly int heads, outputs;

    public GatLayer(string name, int inputs, int outputs, int heads, float[,] adjacency) : base(name)
    {
        (this.heads, this.outputs) = (heads, outputs);
        weight = Parameter(empty(heads * outputs, inputs));
        att_src = Parameter(empty(heads, outputs));
        att_dst = Parameter(empty(heads, outputs));
        bias = Parameter(zeros(heads * outputs));
        init.xavier_uniform_(weight);
        init.xavier_uniform_(att_src);
        init.xavier_uniform_(att_dst);
        int n = adjacency.GetLength(0);
        using var a = tensor(adjacency) + eye(n);
        mask = new GraphConstant(a.gt(0));
        RegisterComponents();
    }

    /// <summary>Attention coefficients α, [B, heads, N, N]; each row sums to one over the node's neighbourhood.</summary>
    public Tensor Attention(Tensor h)
    {
        using var scope = NewDisposeScope();
        var projected = matmul(h, weight.t()).view(h.shape[0], h.shape[1], heads, outputs);   // [B, N, H, O]
        var source = (projected * att_src).sum(-1).transpose(1, 2);                             // [B, H, N]
        var target = (projected * att_dst).sum(-1).transpose(1, 2);
        var scores = functional.leaky_relu(source.unsqueeze(-1) + target.unsqueeze(-2), 0.2);   // [B, H, N, N]
        scores = scores.masked_fill(mask.On(h.device).logical_not(), double.NegativeInfinity);
        return functional.softmax(scores, -1).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        var projected = matmul(h, weight.t()).view(h.shape[0], h.shape[1], heads, outputs).transpose(1, 2);   // [B, H, N, O]
        var mixed = matmul(Attention(h), projected);                                                          // [B, H, N, O]
        return (mixed.transpose(1, 2).reshape(h.shape[0], h.shape[1], heads * outputs) + bias).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The graph-network paper's GCN on superpixel graphs (<see cref="TileGraph"/>): four graph convolutions
/// 1→32→64→64→64 (per channel of intensity in), tanh, then mean and max pooling over the nodes
/// concatenated (128) and a linear layer <c>fc</c> to the classes.
/// </summary>
public sealed class GcnNet : Module<Tensor, Tensor>
{
    private readonly TileGraph graph;
    private readonly GcnLayer gcn1, gcn2, gcn3, gcn4;
    private readonly Linear fc;

    public GcnNet(int channels, int height, int width, int classes) : base("gcn")
    {
        graph = new TileGraph(height, width);
        gcn1 = new GcnLayer("gcn1", channels, 32, graph.Adjacency);
        gcn2 = new GcnLayer("gcn2", 32, 64, graph.Adjacency);
        gcn3 = new GcnLayer("gcn3", 64, 64, graph.Adjacency);
        gcn4 = new GcnLayer("gcn4", 64, 64, graph.Adjacency);
        fc = Linear(128, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var h = graph.Features(images);
        foreach (var layer in new[] { gcn1, gcn2, gcn3, gcn4 }) h = tanh(layer.forward(h));
        var pooled = cat([h.mean([1]), h.amax([1])], 1);
        return fc.forward(pooled).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The graph-network paper's GAT (its Fig. 5): three attention convolutions of 2 heads each,
/// concatenated — GATConv(1, 32, heads=2) → GATConv(64, 64, heads=2) → GATConv(128, 64, heads=2) — with
/// ReLU, mean pooling over the nodes, and three linear layers 128→32→32→classes.
/// </summary>
public sealed class GatNet : Module<Tensor, Tensor>
{
    private readonly TileGraph graph;
    private readonly GatLayer gat1, gat2, gat3;
    private readonly Linear fc1, fc2, fc3;

    public GatNet(int channels, int height, int width, int classes) : base("gat")
    {
        graph = new TileGraph(height, width);
        gat1 = new GatLayer("gat1", channels, 32, 2, graph.Adjacency);
        gat2 = new GatLayer("gat2", 64, 64, 2, graph.Adjacency);
        gat3 = new GatLayer("gat3", 128, 64, 2, graph.Adjacency);
        fc1 = Linear(128, 32);
        fc2 = Linear(32, 32);
        fc3 = Linear(32, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var h = graph.Features(images);
        foreach (var layer in new[] { gat1, gat2, gat3 }) h = functional.relu(layer.forward(h));
        var y = functional.relu(fc1.forward(h.mean([1])));
        y = functional.relu(fc2.forward(y));
        return fc3.forward(y).MoveToOuterDisposeScope();
    }
}
