"""The page's inline style and script (no external reference: the page opens
offline; the Content-Security-Policy forbids any fetch)."""

from __future__ import annotations

__all__ = ["CSS", "SCRIPT", "CSP"]

#: Nothing but inline style and script; images only from data: URLs.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:")

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}
h1{font-size:1.4em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}
code,pre,td{font-family:ui-monospace,monospace}pre{background:#f6f6f6;padding:.5em;overflow:auto}
table{border-collapse:collapse}td,th{padding:1px 6px;text-align:right}
th{background:#f0f0f0;position:sticky;top:0}
table.tasks th{cursor:pointer;user-select:none}table.tasks th.asc:after{content:" \\25b2"}
table.tasks th.desc:after{content:" \\25bc"}
table.tasks tbody tr:hover{background:#eef}table.tasks tbody tr{cursor:pointer}
table.tasks td:nth-last-child(1),table.tasks td:nth-last-child(4){text-align:left}
tr.victim{background:#fdd;font-weight:bold}tr.victim td:first-child:before{content:"\\2620 "}
tr.unreadable{color:#a00}tr.selected{outline:2px solid #36c}
.tablewrap{max-height:32em;overflow:auto;border:1px solid #ddd}
.legend span{margin-right:1em;font-size:12px}.legend i{display:inline-block;width:10px;
height:10px;margin-right:3px}
.vals{font-size:12px;color:#444}.kv{margin-right:.8em;white-space:nowrap}
.zone{margin:.6em 0 1em 1em}.bad{color:#c00}.note{color:#666;font-size:12px}
table.kernel th,table.kernel td{text-align:left}table.memcgs td:first-child{text-align:left}
table.cmp td{text-align:left}tr.moved{background:#ffe}tr.gone{background:#fee}tr.new{background:#efe}
.detail{border:1px solid #36c;padding:.5em;margin:.5em 0;background:#f7f9ff}
svg.bar{display:block;margin:2px 0}
"""

SCRIPT = r"""
(function(){
function key(td,kind){var v=!td?'':td.hasAttribute('data-v')?td.getAttribute('data-v'):td.textContent;
 if(kind==='num'){if(v===''||v===null)return -Infinity;var n=Number(v);return isNaN(n)?-Infinity:n;}
 return v||'';}
function sortBy(table,th){
 var ths=Array.prototype.slice.call(th.parentNode.children),col=ths.indexOf(th);
 var kind=th.getAttribute('data-kind');var asc=!th.classList.contains('asc');
 ths.forEach(function(h){h.classList.remove('asc','desc');});
 th.classList.add(asc?'asc':'desc');
 var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
 var keyed=rows.map(function(r,i){return [key(r.cells[col],kind),i,r];});
 keyed.sort(function(a,b){var x=a[0],y=b[0];
  if(x<y)return asc?-1:1;if(x>y)return asc?1:-1;return a[1]-b[1];});
 var frag=document.createDocumentFragment();keyed.forEach(function(k){frag.appendChild(k[2]);});
 body.appendChild(frag);}
function show(table,tr){
 var id=table.id.replace('tasks-','detail-'),box=document.getElementById(id);
 var prev=table.querySelector('tr.selected');if(prev)prev.classList.remove('selected');
 tr.classList.add('selected');
 var heads=table.tHead.rows[0].cells,out=[];
 for(var i=0;i<tr.cells.length&&i<heads.length;i++){
  out.push(heads[i].textContent.replace(/[\u25b2\u25bc ]+$/,'')+': '+tr.cells[i].textContent);}
 var data={};try{data=JSON.parse(document.getElementById(table.getAttribute('data-explain')).textContent);}catch(e){}
 var ex=data[tr.getAttribute('data-pid')];
 box.textContent='';var pre=document.createElement('pre');
 pre.textContent=out.join('\n')+'\n\nexplain: '+(ex===undefined||ex===null?
  'not available on this page yet':(typeof ex==='string'?ex:JSON.stringify(ex,null,1)));
 box.appendChild(pre);box.hidden=false;}
document.querySelectorAll('table.tasks').forEach(function(table){
 table.tHead.addEventListener('click',function(e){var th=e.target.closest('th');if(th)sortBy(table,th);});
 table.tBodies[0].addEventListener('click',function(e){var tr=e.target.closest('tr');if(tr)show(table,tr);});});
document.documentElement.setAttribute('data-ready','1');
})();
"""
