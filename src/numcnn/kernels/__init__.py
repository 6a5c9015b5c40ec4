"""Pure ndarray -> ndarray forward and backward kernels. Imports nothing from the rest of numcnn."""
