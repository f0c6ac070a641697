import Patchwork
print(Gemm.description)
let a = Tensor.randomNormal([4, 3]).requiringGrad()
let b = Tensor.randomNormal([3, 5])
let y = (matmul(a, b).gelu().sum())
y.backward()
print(y, a.grad!)
