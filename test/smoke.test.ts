describe('x',()=>{it('y',()=>{})});
