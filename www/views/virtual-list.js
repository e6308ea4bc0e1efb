// A scrolling list of fixed-height rows that keeps only the visible rows (and a few
// more) in the DOM, reusing their elements: updates cost the same for 50 tasks or
// 5,000, and rows never change height, so nothing jumps.

import { schedule } from '../frame.js';

const OVERSCAN = 6;

export class VirtualList {
  /**
   * @param {HTMLElement} scroller the element that scrolls (gets the list inside)
   * @param {object} options
   * @param {number} options.rowHeight pixels, the same as the CSS row height
   * @param {() => HTMLElement} options.createRow makes an empty row element
   * @param {(el: HTMLElement, row: any, index: number) => void} options.updateRow fills it
   */
  constructor(scroller, { rowHeight, createRow, updateRow }) {
    this.scroller = scroller;
    this.rowHeight = rowHeight;
    this.createRow = createRow;
    this.updateRow = updateRow;
    this.rows = [];
    this.pool = [];
    this.spacer = document.createElement('div');
    this.spacer.className = 'vlist-spacer';
    this.scroller.append(this.spacer);
    this.paint = () => this.#paint();
    this.onScroll = () => schedule(this.paint);
    this.scroller.addEventListener('scroll', this.onScroll, { passive: true });
    this.resize = new ResizeObserver(() => schedule(this.paint));
    this.resize.observe(this.scroller);
  }

  /** Replaces the rows; they are drawn in the next frame. */
  setRows(rows) {
    this.rows = rows;
    schedule(this.paint);
  }

  /** Draws now (callers already inside a frame use this). */
  render() {
    this.#paint();
  }

  #paint() {
    const { rows, rowHeight } = this;
    this.spacer.style.height = `${rows.length * rowHeight}px`;
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || rowHeight * 20;
    const first = Math.max(0, Math.floor(top / rowHeight) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((top + height) / rowHeight) + OVERSCAN);
    const count = Math.max(0, last - first);
    while (this.pool.length < count) {
      const el = this.createRow();
      el.classList.add('vlist-row');
      this.spacer.append(el);
      this.pool.push(el);
    }
    for (let i = 0; i < this.pool.length; i++) {
      const el = this.pool[i];
      if (i < count) {
        const index = first + i;
        el.hidden = false;
        el.style.transform = `translateY(${index * rowHeight}px)`;
        this.updateRow(el, rows[index], index);
      } else {
        el.hidden = true;
      }
    }
  }

  /** Stops listening (the elements go with the scroller). */
  destroy() {
    this.scroller.removeEventListener('scroll', this.onScroll);
    this.resize.disconnect();
  }
}
